"""`publisher serve`: the HTTP app and the scheduler in one process, started and stopped cleanly.

On start it finishes what a previous run left: rows in flight when it died go back to
the queue (reported as uncertain, by the first delivery sweep, which runs at once),
claimed schedules are enqueued, missed schedules run once (or are skipped past the
grace), and queued messages are delivered. While it runs, content/ is watched for saved
articles (see watch.py); sends run on threads of their own, so noticing the next
article never waits for a send.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

import uvicorn
from sqlalchemy import Engine
from starlette.types import ASGIApp

from publisher import build, jobs, scheduler, watch
from publisher.config import Config
from publisher.store import open_store
from publisher.web import create_app

__all__ = ["configure_logging", "run_daemon", "start_background"]

log = logging.getLogger(__name__)


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("apscheduler.executors.default", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
    # A saved article is noticed at once; the interval look above stays as the fallback.
    threading.Thread(
        target=watch.watch_content, args=(config.path_of("build.content"), lambda: jobs.publish_new(key), rt.stop),
        name="watch-content", daemon=True,
    ).start()
    return key, rt, sched


def stop_background(key: str, rt: jobs.Runtime, sched: object) -> None:
    """Stop claiming, let in-flight sends finish and be recorded, then stop the scheduler."""
    rt.stop.set()
    shutdown = getattr(sched, "shutdown", None)
    if shutdown is not None:
        shutdown(wait=True)
    scheduler.forget(key)
    rt.db.dispose()


def server_config(app: ASGIApp, *, host: str, port: int) -> uvicorn.Config:
    """How `publisher serve` runs uvicorn. Proxy headers are off: uvicorn would otherwise
    take X-Forwarded-For from any local connection; the app reads it only from the
    proxies in `[server] trusted_proxies`."""
    return uvicorn.Config(
        app, host=host, port=port, log_level="info", access_log=False, proxy_headers=False
    )


def run_daemon(config: Config, *, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn handles both), then shut down cleanly."""
    build.output_folder(config)  # an output that would serve the publication's own files: refuse first
    # The app is made before anything is sent: from the first send on, a SIGTERM must find
    # the handler below in place, however long the app took to build on a busy machine.
    db = open_store(config.store_url)
    app = create_app(config, engine=db)
    key, rt, sched = start_background(config, db=db)
    server = uvicorn.Server(server_config(app, host=host, port=port))
    log.info("serving %s on http://%s:%s", config["publication.title"], host, port)

    def note_signal(signum: int, frame: FrameType | None) -> None:
        # uvicorn stops serving on SIGINT/SIGTERM and then raises the signal again to end the
        # process; this handler takes that second delivery so the shutdown below can finish.
        rt.stop.set()

    previous = {sig: signal.signal(sig, note_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        log.info("shutting down: finishing messages in flight")
        stop_background(key, rt, sched)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
