"""APScheduler wiring: which job wakes up when.

The scheduler only wakes jobs up. It keeps its jobs in the store's database, but it is
not the durability layer (APScheduler deletes a one-off job before running it): every
job re-reads the truth from the store, so a missed, doubled or lost wake-up changes
nothing about what is sent.

A stored job names its function by import path ("publisher.schedule.jobs:publish_new").
A row written by an older version may name a path that has since moved; APScheduler
would fail to load it on every look-up, so `create_scheduler` first removes the rows
whose function no longer imports. Nothing is lost by that: the recurring jobs are added
again at start, and each one-off wake-up is armed again from the schedules table.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import ref_to_obj
from sqlalchemy.engine import Engine

from publisher.errors import ConfigError
from publisher.schedule import jobs, timing
from publisher.store import schedules

__all__ = [
    "JOB_TABLE", "arm_schedules", "arm_sequences", "create_scheduler", "drop_unloadable_jobs", "run_sequences_on_time",
    "start_daemon_jobs",
]

log = logging.getLogger(__name__)

SWEEP_SECONDS = 15.0
PING_SECONDS = 60.0
HOOK_SECONDS = 5.0
SEQUENCE_SECONDS = 60.0
JOB_TABLE = "apscheduler_jobs"


class _Pool(ThreadPoolExecutor):  # type: ignore[misc]
    """APScheduler's thread pool, which drops a wake-up handed to it after it was shut down.

    Stopping a scheduler sets its state before it shuts the pool down, and its loop may
    be waking up in between: seeing the state no longer "paused", that pass looks for due
    jobs and submits one to the closed pool, which APScheduler logs with a traceback.
    Both happen under the scheduler's job store lock, so a submission comes wholly
    before the pool closes (and runs) or after (and is dropped here). Nothing is lost:
    every job reads the truth from the store, and the next start catches up at once.
    """

    _closed = False

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
        super().shutdown(wait)

    def submit_job(self, job: Any, run_times: Any) -> None:
        if self._closed:
            log.debug("not starting %s: the scheduler is stopping", job)
            return
        super().submit_job(job, run_times)


def drop_unloadable_jobs(db: Engine) -> list[str]:
    """Remove the stored jobs whose function no longer imports; returns their ids.

    The job store pickles each job's state, which names the function as "module:name";
    only that name is resolved here, so a row that fails is one an older version wrote.
    """
    table = sa.Table(JOB_TABLE, sa.MetaData(), autoload_with=db) if sa.inspect(db).has_table(JOB_TABLE) else None
    if table is None:
        return []
    dropped: list[str] = []
    with db.begin() as conn:
        for job_id, state in conn.execute(sa.select(table.c.id, table.c.job_state)).all():
            try:
                ref = pickle.loads(state)["func"]  # noqa: S301 - the job store's own rows, as APScheduler reads them
                ref_to_obj(ref)
            except Exception as exc:  # any failure to load is one APScheduler would hit on every look-up
                log.warning("removing stored job %s: its function does not load (%s); it is added again if still due",
                            job_id, exc)
                conn.execute(sa.delete(table).where(table.c.id == job_id))
                dropped.append(job_id)
    return dropped


def create_scheduler(rt: jobs.Runtime) -> BackgroundScheduler:
    """A background scheduler whose job store is a table in the publication's database,
    cleared first of jobs an older version stored under a function path that moved."""
    drop_unloadable_jobs(rt.db)
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=rt.db, tablename=JOB_TABLE)},
        executors={"default": _Pool(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=rt.config.tz,
    )


def _every(seconds: float) -> IntervalTrigger:
    return IntervalTrigger(seconds=max(1.0, seconds))


def start_daemon_jobs(scheduler: BackgroundScheduler, config_path: str, rt: jobs.Runtime) -> None:
    """Register the recurring jobs (replacing those a previous run left in the store)."""
    config = rt.config
    add = scheduler.add_job
    add(jobs.publish_new, _every(config["schedule.watch_interval"]), args=[config_path],
        id="publish", name="notice new articles", replace_existing=True)
    add(jobs.run_due_schedules, _every(SWEEP_SECONDS), args=[config_path],
        id="schedules", name="run due scheduled sends", replace_existing=True)
    add(jobs.deliver_due, _every(SWEEP_SECONDS), args=[config_path],
        id="deliver", name="deliver queued and retried messages", replace_existing=True)
    add(jobs.send_pings, _every(PING_SECONDS), args=[config_path],
        id="pings", name="retry WebSub pings", replace_existing=True)
    add(jobs.deliver_hooks, _every(HOOK_SECONDS), args=[config_path],
        id="hooks", name="deliver outbound webhooks", replace_existing=True)
    add(run_sequences_on_time, _every(SEQUENCE_SECONDS), args=[config_path],
        id="sequences", name="enrol readers and queue due sequence steps", replace_existing=True)
    add(arm_schedules, _every(SWEEP_SECONDS), args=[config_path],
        id="arm", name="arm exact times of scheduled sends", replace_existing=True)
    cron = config["schedule.digest"]
    if cron:
        trigger = timing.cron_trigger(cron, config.tz, "[schedule] digest")
        add(jobs.digest, trigger, args=[config_path], id="digest", name="digest", replace_existing=True)
    elif scheduler.get_job("digest"):
        scheduler.remove_job("digest")
    backup_cron = config["backup.schedule"]
    if backup_cron:
        backup_trigger = timing.cron_trigger(backup_cron, config.tz, "[backup] schedule")
        if backup_trigger.get_next_fire_time(None, rt.clock()) is None:
            raise ConfigError(f"[backup] schedule {backup_cron!r} never fires (no such date): give a cron line "
                              "that comes round, e.g. \"30 3 * * *\" for 03:30 every day")
        add(jobs.backup, backup_trigger, args=[config_path], id="backup", name="backup", replace_existing=True)
    elif scheduler.get_job("backup"):
        scheduler.remove_job("backup")
    if config["bounces.imap.host"]:
        add(jobs.check_bounce_mailbox, _every(config["bounces.imap.poll_seconds"]), args=[config_path],
            id="bounce-mailbox", name="read the bounce mailbox", replace_existing=True)
    elif scheduler.get_job("bounce-mailbox"):
        scheduler.remove_job("bounce-mailbox")
    for index, source in enumerate(config.sources):
        add(jobs.poll_sources, _every(source.interval), args=[config_path, source.url],
            id=f"source:{index}", name=f"poll {source.name}", replace_existing=True)


def arm_schedules(config_path: str) -> int:
    """Give each pending schedule a one-off wake-up at its exact time.

    The sweep would find it within SWEEP_SECONDS anyway; this makes it punctual.
    """
    rt = jobs.runtime_for(config_path)
    scheduler = _SCHEDULERS.get(config_path)
    if scheduler is None:
        return 0
    now = rt.clock()
    armed = 0
    for schedule_id, run_at in schedules.due_times(rt.db):
        if run_at <= now:
            continue
        job_id = f"schedule:{schedule_id}"
        if scheduler.get_job(job_id) is None:
            scheduler.add_job(
                jobs.run_due_schedules, DateTrigger(run_date=run_at + timedelta(milliseconds=50)),
                args=[config_path], id=job_id, name=f"scheduled send {schedule_id}", replace_existing=True,
            )
            armed += 1
    return armed


NEXT_SEQUENCE_JOB = "sequences:next"
SEQUENCE_GAP = timedelta(seconds=1)
"""The least time from one run to the early wake-up it arms: readers due within it go together."""


def run_sequences_on_time(config_path: str) -> int:
    """The sequences' run (`jobs.run_sequences`), then a wake-up armed for the next step due."""
    queued = jobs.run_sequences(config_path)
    arm_sequences(config_path)
    return queued


def arm_sequences(config_path: str) -> datetime | None:
    """Give the next step due before the minute job's next run a one-off wake-up at its
    moment (replacing one armed later), so that it goes then, not up to a minute after.

    A step due later is armed by the run just before it. Returns the moment armed, if any.
    """
    scheduler = _SCHEDULERS.get(config_path)
    if scheduler is None:
        return None
    rt = jobs.runtime_for(config_path)
    from publisher.services import sequences  # only a publication with sequences pays for it

    due = sequences.next_due(rt.db)
    now = rt.clock()
    if due is None or due > now + timedelta(seconds=SEQUENCE_SECONDS):
        return None
    due = max(due, now + SEQUENCE_GAP)
    armed = scheduler.get_job(NEXT_SEQUENCE_JOB)
    if armed is not None and armed.next_run_time is not None and now < armed.next_run_time <= due:
        return None
    scheduler.add_job(
        run_sequences_on_time, DateTrigger(run_date=due + timedelta(milliseconds=50)), args=[config_path],
        id=NEXT_SEQUENCE_JOB, name="queue the next sequence step at its moment", replace_existing=True,
    )
    return due


_SCHEDULERS: dict[str, BackgroundScheduler] = {}


_STOP_LISTENING: dict[str, Callable[[], None]] = {}


def remember(config_path: str, scheduler: BackgroundScheduler) -> None:
    """Make `scheduler` the one that arms wake-ups for `config_path`, at once for every
    schedule this process adds (the desk, the API): a send is never a sweep late."""
    _SCHEDULERS[config_path] = scheduler
    _STOP_LISTENING[config_path] = schedules.listen(lambda _item: _arm_now(config_path))


def _arm_now(config_path: str) -> None:
    # Off the caller's thread: the desk's request should not wait on the job store.
    threading.Thread(target=arm_schedules, args=[config_path], name="arm-schedule", daemon=True).start()


def forget(config_path: str) -> None:
    _SCHEDULERS.pop(config_path, None)
    stop = _STOP_LISTENING.pop(config_path, None)
    if stop is not None:
        stop()
