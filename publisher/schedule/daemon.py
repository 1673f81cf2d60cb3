"""`publisher serve`: the HTTP app and the scheduler in one process, started and stopped cleanly.

On start it finishes what a previous run left: rows in flight when it died go back to
the queue (reported as uncertain, by the first delivery sweep, which runs at once),
claimed schedules are enqueued, missed schedules run once (or are skipped past the
grace), and queued messages are delivered. While it runs, content/ is watched for saved
articles (see watch.py); sends run on threads of their own, so noticing the next
article never waits for a send.

Settings are taken up without a restart: config.toml and the secrets file beside it are
looked at every RELOAD_POLL seconds (a stat, no read), and a changed file is loaded and
checked as at start. A valid one becomes the app's (a new app swapped in, see
web.app.LiveApp) and the jobs' (the runtime's config; the digest job re-added or removed);
sends already under way finish with the config they started with. An invalid one is
logged, and the old settings keep running. `store.url`, `server.host` and `server.port`
take effect after a restart, as does a new content folder for the watcher.
"""

from __future__ import annotations

import errno
import gc
import logging
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.config import SECRETS_FILE, Config, load_config
from publisher.content import watch
from publisher.delivery.sending import require_postal_address
from publisher.errors import PublisherError
from publisher.logs import access_log, configure_logging
from publisher.mail import tokens
from publisher.schedule import heartbeat, jobs, scheduler
from publisher.site import build
from publisher.store import counts_kept, open_store
from publisher.store.folding import now_and_then
from publisher.store.issues import fold_issue_counts
from publisher.web import create_app
from publisher.web.app import LiveApp

__all__ = [
    "AccessLog", "bind", "configure_logging", "keep_folding", "reload_settings", "run_daemon", "settle_heap",
    "start_background", "sweep_change_lines", "watch_config",
]

log = logging.getLogger(__name__)


class AccessLog:
    """ASGI middleware: one common-log-format line per HTTP request.

    `host ident authuser [date] "request line" status bytes`, with the client address as
    the app was given it (uvicorn trusts no proxy header; see `server_config`) and the body bytes actually sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]
        size = [0]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            elif message["type"] == "http.response.body":
                size[0] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            access_log.info(common_log_line(scope, status[0] or 500, size[0], time.time()))


# A sign-in provider's one-time code and state come back in the query: the log keeps
# their names, not their values.
_SECRET_IN_QUERY = re.compile(rb"(?:^|(?<=&))(code|state|token|id_token|access_token)=[^&]*")


def common_log_line(scope: Scope, status: int, size: int, when: float) -> str:
    """The common log format's line for one request (`-` for what is unknown or empty)."""
    client = scope.get("client")
    host = client[0] if client else "-"
    path = scope.get("raw_path") or scope.get("path", "").encode("utf-8")
    query = _SECRET_IN_QUERY.sub(rb"\1=-", scope.get("query_string") or b"")
    target = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    target = target.replace('"', "%22").replace("\\", "%5C")
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(when))
    request = f'{scope.get("method", "-")} {target} HTTP/{scope.get("http_version", "1.1")}'
    return f'{host} - - [{stamp}] "{request}" {status} {size if size else "-"}'


def bind(host: str, port: int) -> socket.socket:
    """Listen on host:port now, so that a port in use is told before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PublisherError(
                f"port {port} on {host} is in use (another `publisher serve`, or another server); "
                "stop it, or choose another port with --port or [server] port"
            ) from exc
        raise PublisherError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def start_background(config: Config, *, db: Engine | None = None) -> tuple[str, jobs.Runtime, object]:
    """Recover, then start the scheduler. Returns (config key, runtime, scheduler)."""
    key = str(config.path or Path("config.toml").resolve())
    rt = jobs.Runtime(
        config=config, db=db if db is not None else open_store(config.store_url), deliver_in_background=True
    )
    jobs.register(key, rt)
    sched = scheduler.create_scheduler(rt)
    scheduler.start_daemon_jobs(sched, key, rt)
    scheduler.remember(key, sched)
    sched.start()
    # Catch up at once rather than at the first interval: missed schedules, queued rows, new articles.
    for job_id in ("publish", "schedules", "deliver", "arm", "pings", "hooks"):
        job = sched.get_job(job_id)
        if job is not None:
            job.modify(next_run_time=rt.clock())
    # `publisher doctor` tells a running daemon by this.
    heartbeat.keep_beating(config.root, rt.stop, rt.clock)
    # A saved article is noticed at once; the interval look above stays as the fallback.
    threading.Thread(
        target=watch.watch_content, args=(config.path_of("build.content"), lambda: jobs.publish_new(key), rt.stop),
        name="watch-content", daemon=True,
    ).start()
    if rt.db.dialect.name == "postgresql":
        threading.Thread(target=keep_folding, args=(rt.db, rt.stop), name="fold-counts", daemon=True).start()
    return key, rt, sched


FOLD_EVERY = 5.0
"""Seconds between two folds of the kept counts by a running daemon (PostgreSQL)."""


def keep_folding(db: Engine, stop: threading.Event, every: float = FOLD_EVERY) -> None:
    """Fold the kept counts' change lines every `every` seconds until `stop` (PostgreSQL).

    A send of a million copies appends a line a copy; folded only when a page is read, the
    first page after a night's send would sum them all, and its fold run for seconds. A
    fold that another reader already runs is skipped (`store.folding`); a database away
    for a moment is told in the log and tried again at the next turn.
    """
    while not stop.wait(every):
        try:
            for fold in (counts_kept.fold, fold_issue_counts):
                now_and_then(db, fold, every=0)
            sweep_change_lines(db)
        except SQLAlchemyError as exc:
            log.warning("the kept counts could not be folded (tried again in %.0f s): %s", every, exc)


CHANGE_TABLES = ("list_count_changes", "event_day_changes", "sent_minute_changes", "issue_count_changes")
SWEEP_FROM = 10_000
"""Folded (dead) lines in a change table from which a daemon vacuums it at once."""


def sweep_change_lines(db: Engine, *, at_least: int = SWEEP_FROM) -> list[str]:
    """VACUUM the change tables that hold `at_least` folded lines (PostgreSQL); their names.

    A fold deletes its lines, but their pages stay until a vacuum, and every reading of a
    count reads the whole table: after an import or a send of a million, until autovacuum
    came round (a minute or more), each figure on Home took 100-200 ms instead of one. A
    vacuum of a table of only dead lines takes a second or two and gives its pages back.
    """
    if db.dialect.name != "postgresql":
        return []
    names = ", ".join(f"'{name}'" for name in CHANGE_TABLES)
    with db.connect() as conn:
        swept = [
            str(name) for name, in conn.exec_driver_sql(
                f"SELECT relname FROM pg_stat_user_tables WHERE relname IN ({names}) AND n_dead_tup >= {int(at_least)}"
            )
        ]
    if swept:
        with db.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for name in swept:
                auto.exec_driver_sql(f"VACUUM {name}")
    return swept


def stop_background(key: str, rt: jobs.Runtime, sched: object) -> None:
    """Stop claiming, let in-flight sends finish and be recorded, then stop the scheduler."""
    rt.stop.set()
    # Paused first, so that no job is handed to an executor that is shutting down (which
    # APScheduler reports with a traceback).
    pause = getattr(sched, "pause", None)
    if pause is not None:
        pause()
    shutdown = getattr(sched, "shutdown", None)
    if shutdown is not None:
        shutdown(wait=True)
    scheduler.forget(key)
    rt.db.dispose()


RELOAD_POLL = 0.2
"""Seconds between two looks at config.toml and the secrets file."""
RESTART_KEYS = ("store.url", "server.host", "server.port")


def _check_startable(config: Config) -> None:
    """What `run_daemon` refuses to start with, refused for a reload too."""
    build.output_folder(config)
    tokens.resolve_secret(config, real_provider=config["delivery.provider"] != "maildir")
    require_postal_address(config)


def reload_settings(
    current: Config, *, live: LiveApp, db: Engine, key: str, rt: jobs.Runtime, sched: object
) -> Config:
    """Load config.toml again and put it to work: the new config, or `current` when the file
    cannot be used (logged with what to fix)."""
    started = time.monotonic()
    assert current.path is not None
    try:
        config = load_config(current.path)
        _check_startable(config)
        app = AccessLog(create_app(config, engine=db))
    except PublisherError as exc:
        log.error("%s changed but cannot be used, so the settings in use stay: %s", current.path, exc)
        return current
    previous = rt.config
    rt.config = config
    try:
        scheduler.start_daemon_jobs(sched, key, rt)
    except PublisherError as exc:
        rt.config = previous
        scheduler.start_daemon_jobs(sched, key, rt)
        log.error("%s changed but cannot be used, so the settings in use stay: %s", current.path, exc)
        return current
    live.swap(app)
    changed = sorted(k for k in config.values if config.values[k] != current.values[k])
    for restart_key in RESTART_KEYS:
        if restart_key in changed:
            log.warning("%s changed: it takes effect after a restart", restart_key)
    log.info("settings reloaded in %.0f ms (%s)", (time.monotonic() - started) * 1000,
             ", ".join(changed) or "no value changed")
    return config


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int] | None, ...]:
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            found.append(None)
        else:
            found.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(found)


def watch_config(config_path: Path, on_change: Callable[[], None], stop: threading.Event,
                 interval: float = RELOAD_POLL) -> None:
    """Call `on_change` whenever config.toml or the secrets file beside it changes, until `stop`."""
    paths = (config_path, config_path.parent / SECRETS_FILE)
    seen = _stamp(paths)
    while not stop.wait(interval):
        now = _stamp(paths)
        if now != seen:
            seen = now
            try:
                on_change()
            except Exception:  # the watch must outlive one bad reload
                log.exception("reloading the settings failed; the settings in use stay")


def _facts(config: Config, host: str, port: int) -> list[str]:
    provider = str(config["delivery.provider"])
    where = f" into {config.path_of('delivery.maildir.path')}" if provider == "maildir" else ""
    policy = str(config["schedule.policy"])
    digest = f", digest \"{config['schedule.digest']}\"" if config["schedule.digest"] else ""
    shown_host = f"[{host}]" if ":" in host else host
    return [
        f"publication {config['publication.title']!r} from {config.path or 'config.toml'}",
        f"articles from {config.path_of('build.content')}, site written to {build.output_folder(config)}",
        f"mail through {provider}{where}",
        f"new articles: policy {policy}{digest}; noticed when saved (and looked for every "
        f"{config['schedule.watch_interval']:g} s)",
        f"serving http://{shown_host}:{port}/ (links in mail point at {config.public_url}/)",
    ]


def server_config(app: ASGIApp, *, host: str, port: int) -> uvicorn.Config:
    """How `publisher serve` runs uvicorn. Proxy headers are off: uvicorn would otherwise
    take X-Forwarded-For from any local connection; the app reads it only from the
    proxies in `[server] trusted_proxies`. Logging is the daemon's own (`configure_logging`)."""
    return uvicorn.Config(
        app, host=host, port=port, log_config=None, log_level="warning", access_log=False,
        server_header=False, proxy_headers=False,
    )


def settle_heap() -> None:
    """Put what starting made (modules, templates, the app, the pools) out of the garbage
    collector's reach, once, just before serving.

    A full collection walks every tracked object; with the ~175,000 a started server holds
    it took 50 to 500 ms on a busy 2-core machine, every request waiting meanwhile: that
    was most of /healthz's p99. Frozen, a collection walks only what requests made since.
    Nothing frozen is ever freed, which is what a server's own parts want anyway.
    """
    gc.collect()
    gc.freeze()


def run_daemon(config: Config, *, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn handles both), then shut down cleanly.

    Everything that can refuse to start (the secret, the postal address, templates, the
    port) is checked before the scheduler starts, so a refusal leaves nothing running.
    """
    build.output_folder(config)  # an output that would serve the publication's own files: refuse first
    real_provider = config["delivery.provider"] != "maildir"
    tokens.resolve_secret(config, real_provider=real_provider)
    require_postal_address(config)
    db = open_store(config.store_url)
    try:
        app = LiveApp(AccessLog(create_app(config, engine=db)))
        sock = bind(host, port)
    except BaseException:
        db.dispose()
        raise
    key, rt, sched = start_background(config, db=db)
    if config.path is not None:
        in_use = [config]

        def reload() -> None:
            in_use[0] = reload_settings(in_use[0], live=app, db=db, key=key, rt=rt, sched=sched)

        threading.Thread(
            target=watch_config, args=(config.path, reload, rt.stop), name="watch-config", daemon=True
        ).start()
    server = uvicorn.Server(server_config(app, host=host, port=port))
    for fact in _facts(config, host, port):
        log.info("%s", fact)

    def note_signal(signum: int, frame: FrameType | None) -> None:
        # uvicorn stops serving on SIGINT/SIGTERM and then raises the signal again to end the
        # process; this handler takes that second delivery so the shutdown below can finish.
        rt.stop.set()

    previous = {sig: signal.signal(sig, note_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    settle_heap()
    try:
        server.run(sockets=[sock])
    finally:
        log.info("shutting down: finishing messages in flight")
        stop_background(key, rt, sched)
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
