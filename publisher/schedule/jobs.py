"""The daemon's jobs: what happens when the scheduler wakes up.

Each job is a module-level function taking a config path (and an id), so APScheduler
can store it in the database and call it after a restart. The durable truth lives in
the store (schedules, the ledger, articles seen): a job that runs twice, or in two
daemons at once, does its work once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from publisher.config import Config, load_config
from publisher.delivery import engine
from publisher.delivery.complaint_rate import complaint_rate
from publisher.delivery.hands import extra_hands
from publisher.delivery.sending import deliver_queued, prepare_article_issue, prepare_digest_issue
from publisher.errors import PublisherError
from publisher.models import Article
from publisher.schedule import timing
from publisher.services import catalogue, scheduling, site, subject_tests
from publisher.site import websub
from publisher.site.build import build_site
from publisher.site.build_cache import ArticleCache
from publisher.store import ledger, open_store, publishing, schedules

__all__ = [
    "Runtime",
    "backup",
    "check_bounce_mailbox",
    "deliver_due",
    "deliver_hooks",
    "digest",
    "poll_sources",
    "publish_new",
    "register",
    "run_due_schedules",
    "run_sequences",
    "runtime_for",
    "send_pings",
]

log = logging.getLogger(__name__)

WAITING = ("wait", "draft")
"""Policies under which a new article's newsletter waits for the author ("draft": the old name)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """What every job of one daemon shares: the config, the database, a stop signal."""

    config: Config
    db: sa.Engine
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], datetime] = utcnow
    worker: str = field(default_factory=ledger.new_worker_id)
    deliver_lock: threading.Lock = field(default_factory=threading.Lock)
    deliver_wanted: threading.Event = field(default_factory=threading.Event)
    """Set by every call of `deliver_due`: a running delivery loop goes round once more."""
    deliver_in_background: bool = False
    """The daemon's choice: sends started by a job run on a thread of their own, so that the
    job (noticing the next article) is never held up by a send."""
    publish_lock: threading.Lock = field(default_factory=threading.Lock)
    """One look at content/ at a time (the watcher and the interval job both look)."""
    content_fingerprint: tuple[tuple[str, int, int], ...] = ()


_RUNTIMES: dict[str, Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def register(config_path: str, runtime: Runtime) -> None:
    """Make `runtime` the one jobs use for `config_path` (the daemon does this at start)."""
    with _RUNTIMES_LOCK:
        _RUNTIMES[config_path] = runtime


def runtime_for(config_path: str) -> Runtime:
    """The registered runtime, or one made from the config file (a job fired after a restart)."""
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(config_path)
        if runtime is None:
            config = load_config(config_path)
            runtime = Runtime(config=config, db=open_store(config.store_url))
            _RUNTIMES[config_path] = runtime
        return runtime


def _fingerprint(config: Config) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of content/: a cheap test of "did anything change?"."""
    folder = config.path_of("build.content")
    if not folder.is_dir():
        return ()
    entries = []
    for path in sorted(folder.glob("*.md")):
        stat = path.stat()
        entries.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def publish_new(config_path: str) -> list[str]:
    """Notice new articles: rebuild, ping hubs, and create each one's issue per the policy.

    The first run on a fresh database marks the back catalogue as seen instead of mailing
    it. Returns the slugs handled as new.
    """
    rt = runtime_for(config_path)
    with rt.publish_lock, site.no_cycle_collection():  # a rebuild's thousands of objects
        return _publish_new(config_path, rt)


def _publish_new(config_path: str, rt: Runtime) -> list[str]:
    config, db, now = rt.config, rt.db, rt.clock()
    fingerprint = _fingerprint(config)
    if fingerprint == rt.content_fingerprint and rt.content_fingerprint:
        return []
    # Parses only the saved files, and renders only the pages that show them.
    cache = ArticleCache(config)
    try:
        articles, problems = catalogue.read_through(config, cache)
        if problems:
            raise problems[0]
        public = [a for a in articles if a.is_public(now)]
        report = build_site(config, public, now, cache=cache)
    except PublisherError as exc:
        # Keep serving what was built last; the next look after the fix picks everything up.
        log.error("not publishing until this is fixed: %s", exc)
        rt.content_fingerprint = ()
        return []
    finally:
        cache.save()
    rt.content_fingerprint = fingerprint
    for warning in report.warnings:
        log.warning("%s", warning)
    first_look = not publishing.catalogue_filed(db)
    seen = publishing.seen_ids(db)
    handled: list[str] = []
    for article in sorted(public, key=lambda a: a.date):
        if article.id in seen:
            continue
        policy = "backlog" if first_look else _policy_for(config, article)
        if not publishing.mark_seen(
            db, article_id=article.id, slug=article.slug, origin=article.source, handled=policy, now=now
        ):
            continue  # another daemon noticed it first
        if policy != "backlog":
            _apply_policy(config_path, rt, cache.full(article), policy, now)  # with its text
            handled.append(article.slug)
    if first_look:
        publishing.file_catalogue(db, now=now)
    if config["feeds.hubs"] and websub.announce(config, db, now=now, written=report.written):
        send_pings(config_path)
    # Articles dated in the future become public when their time comes, not when a file changes.
    if any(not a.draft and a.date > now for a in articles):
        rt.content_fingerprint = ()
    return handled


def _policy_for(config: Config, article: Article) -> str:
    if article.send_at is not None:
        return "send_at"
    return str(config["schedule.policy"])


def _apply_policy(config_path: str, rt: Runtime, article: Article, policy: str, now: datetime) -> None:
    config, db = rt.config, rt.db
    if policy == "digest":
        log.info("%s waits for the next digest", article.slug)
        return
    waits = policy in WAITING
    issue_id = prepare_article_issue(config, db, article, now=now, status="draft" if waits else "scheduled")
    if waits:
        log.info(
            "%s: on the site; its newsletter (issue %s) waits for you: send or schedule it in the desk, "
            "or with `publisher send %s`", article.slug, issue_id, article.slug,
        )
        return
    if policy == "now":
        run_at = now
    elif policy == "send_at":
        assert article.send_at is not None
        run_at = article.send_at
    else:
        window = timing.parse_window(config["schedule.window"])
        run_at = timing.next_window(window, now, config.tz)
    local = run_at.astimezone(config.tz)
    schedules.add(
        db, issue_id=issue_id, run_at=run_at, timezone=config.tz.key, local_time=f"{local:%Y-%m-%d %H:%M}", now=now
    )
    log.info("%s: issue %s scheduled for %s %s", article.slug, issue_id, f"{local:%Y-%m-%d %H:%M}", config.tz.key)
    if policy == "now":
        run_due_schedules(config_path)


def run_due_schedules(config_path: str) -> int:
    """Claim due schedules (once, whoever else is looking) and start each: the checks that
    stop a send, the article put on the site, rendered as it is now, queued; then deliver,
    and rebuild the site for the articles that just came out."""
    rt = runtime_for(config_path)
    config, db, now = rt.config, rt.db, rt.clock()
    grace = timedelta(hours=config["schedule.grace_hours"])
    for claimed in schedules.claim_due(db, worker=rt.worker, now=now, grace=grace):
        if not claimed.run:
            log.warning("schedule %s skipped: %s", claimed.schedule.id, claimed.schedule.detail)
    started = 0
    published = False
    for schedule in schedules.unfinished(db):
        try:
            done = scheduling.start_schedule(config, db, schedule, now=now)
        except PublisherError as exc:
            # Left claimed: the next sweep tries again, and the author sees why in the log.
            log.error("schedule %s could not start: %s", schedule.id, exc)
            continue
        published = published or bool(done.published)
        if done.held:
            log.warning("schedule %s %s", schedule.id, done.held)
        elif done.skipped:
            log.warning("schedule %s skipped: %s", schedule.id, done.skipped)
        else:
            log.info("schedule %s: issue %s, %s recipients queued", schedule.id, schedule.issue_key, done.queued)
            started += 1
    if started:
        if rt.deliver_in_background:
            threading.Thread(target=deliver_due, args=[config_path], name="deliver-now", daemon=True).start()
        else:
            deliver_due(config_path)
    if published:
        # The first copies are on their way; now the site, the feeds and the hubs catch up.
        rt.content_fingerprint = ()
        publish_new(config_path)
    return started


def deliver_due(config_path: str) -> int:
    """Send every ledger row whose time has come; one delivery loop per daemon at a time.

    A call that finds the loop running leaves it a note (`deliver_wanted`), so rows queued
    while it was finishing are not left for the next sweep.
    """
    rt = runtime_for(config_path)
    rt.deliver_wanted.set()
    sent = 0
    while rt.deliver_wanted.is_set() and not rt.stop.is_set() and rt.deliver_lock.acquire(blocking=False):
        try:
            while rt.deliver_wanted.is_set() and not rt.stop.is_set():
                rt.deliver_wanted.clear()
                sent += _deliver_once(rt)
        finally:
            rt.deliver_lock.release()
    return sent


def _deliver_once(rt: Runtime) -> int:
    try:
        # Subject tests whose decision time came: the winner's copies are queued first.
        for step in subject_tests.settle(rt.config, rt.db, now=rt.clock()):
            log.info("issue %s: subject test %s: %s", step.issue_id, step.step, step.detail)
        # Rows a crashed sender left behind (this host's dead processes, or any past the lease).
        recovered = ledger.recover(rt.db, now=rt.clock(), lease=engine.lease_for(rt.config))
        if recovered.count:
            log.warning(
                "%s messages were in flight when their sender stopped: queued again, marked uncertain",
                recovered.count,
            )
        due = ledger.count_due(rt.db, now=rt.clock())
        with extra_hands(rt.config, due=due, stop=rt.stop) as hands:
            sent = deliver_queued(rt.config, rt.db, stop=rt.stop, worker=rt.worker, clock=rt.clock)
        return sent + hands.sent
    except PublisherError as exc:
        log.error("delivery stopped: %s", exc)
        return 0


def digest(config_path: str) -> int | None:
    """Send everything published since the last digest; nothing new, nothing sent."""
    rt = runtime_for(config_path)
    config, db, now = rt.config, rt.db, rt.clock()
    pending = set(publishing.undigested(db))
    found = catalogue.catalogue(config) if pending else None
    articles = [found.whole(a) for a in found.parsed() if a.is_public(now) and a.id in pending] if found else []
    if not articles:
        log.info("digest: nothing new since the last one; nothing sent")
        return None
    rate = complaint_rate(db, now=now)
    if rate.level == "stop":  # as every new send: its articles wait for a later digest
        log.warning("digest: not sent, the complaint rate is %s; its %s articles wait for the next digest",
                    rate.in_words(), len(articles))
        return None
    issue_id = prepare_digest_issue(config, db, articles, now=now)
    queued = ledger.enqueue(
        db, issue_id, now=now, tz_of_author=config.tz, skip_had=scheduling.digest_skip_had(db, articles)
    )
    publishing.mark_digested(db, [a.id for a in articles], now=now)
    log.info("digest: %s articles, %s recipients queued", len(articles), queued)
    deliver_due(config_path)
    return issue_id


def run_sequences(config_path: str) -> int:
    """Enrol readers into welcome and drip sequences and queue their due steps, then send
    them; returns the steps queued. A sequence that cannot be read is logged, not run."""
    from publisher.services import sequences  # only a publication with sequences pays for it

    rt = runtime_for(config_path)
    try:
        report = sequences.run(rt.config, rt.db, now=rt.clock())
    except PublisherError as exc:
        log.error("sequences not run: %s", exc)
        return 0
    for problem in report.problems:
        log.warning("%s", problem)
    if report.total_queued:
        log.info("sequences: %s steps queued", report.total_queued)
        deliver_due(config_path)
    return report.total_queued


def send_pings(config_path: str) -> int:
    """Send WebSub pings whose time has come (new ones, and retries of hubs that were down)."""
    rt = runtime_for(config_path)
    return len(websub.send_due_pings(rt.config, rt.db, now=rt.clock()))


def deliver_hooks(config_path: str) -> int:
    """Send outbound webhook messages whose time has come; returns how many were delivered."""
    from publisher.delivery import hooks

    rt = runtime_for(config_path)
    return hooks.deliver_due(rt.config, rt.db, now=rt.clock()).delivered


def poll_sources(config_path: str, url: str | None = None) -> int:
    """Poll the watched feed at `url` (every due one when None); new items land in content/
    as Markdown files and flow like local articles."""
    from publisher.content import sources  # the watched-feed machinery is only needed when configured

    rt = runtime_for(config_path)
    now = rt.clock()
    chosen = [s for s in rt.config.sources if url is None or s.url == url]
    results = [sources.poll_source(rt.config, rt.db, source, now=now) for source in chosen]
    for result in results:
        if result.error:
            log.warning("source %s: %s", result.source, result.error)
    new = sum(len(r.new_articles) for r in results)
    if new:
        rt.content_fingerprint = ()
        publish_new(config_path)
    return new


def backup(config_path: str) -> str | None:
    """The scheduled backup: one archive in `backup.folder`, then the newest `backup.keep`
    kept. A failure is logged and the next run tries again; sends are never held up."""
    from publisher.services import backup as backups

    rt = runtime_for(config_path)
    try:
        made = backups.scheduled_backup(rt.config, now=rt.clock())
    except PublisherError as exc:
        log.error("scheduled backup failed: %s", exc)
        return None
    log.info("backup written: %s (%s bytes, %s files, %s older removed)", made.path, made.size, made.files,
             len(made.pruned))
    return str(made.path)


_MAILBOX_WATCHES: dict[str, object] = {}
_MAILBOX_LOCK = threading.Lock()


def check_bounce_mailbox(config_path: str) -> None:
    """Read the bounce mailbox (`bounces.imap.*`): a pass, then IDLE until the next run
    where the server offers it. The connection is kept from one run to the next, and made
    again when the settings change; a failure is logged and retried after a backoff."""
    from publisher.services.bounce_mailbox import MailboxWatch  # only needed with a mailbox configured

    rt = runtime_for(config_path)
    with _MAILBOX_LOCK:
        watch = _MAILBOX_WATCHES.get(config_path)
        if not isinstance(watch, MailboxWatch) or watch.config is not rt.config or watch.db is not rt.db:
            if isinstance(watch, MailboxWatch):
                watch.close()
            watch = MailboxWatch(rt.config, rt.db, clock=rt.clock)
            _MAILBOX_WATCHES[config_path] = watch
    watch.run(rt.stop)
    if rt.stop.is_set():
        watch.close()
