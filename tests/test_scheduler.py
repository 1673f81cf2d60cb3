"""The scheduler's job store after an upgrade: rows naming a function that moved are removed."""

from __future__ import annotations

import pickle
from pathlib import Path

import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from publisher.config import load_config
from publisher.schedule import jobs, scheduler
from publisher.store import open_store


def _store_job(db: sa.Engine, job_id: str, func_ref: str) -> None:
    """Store a job as APScheduler does, then make its state name `func_ref` (as an older version wrote it)."""
    store = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=db, tablename=scheduler.JOB_TABLE)})
    store.add_job(jobs.publish_new, IntervalTrigger(seconds=60), args=["x"], id=job_id)
    store.start(paused=True)
    store.shutdown(wait=False)
    table = sa.Table(scheduler.JOB_TABLE, sa.MetaData(), autoload_with=db)
    with db.begin() as conn:
        state = pickle.loads(conn.execute(sa.select(table.c.job_state).where(table.c.id == job_id)).scalar_one())  # noqa: S301 - the row this test wrote
        state["func"] = func_ref
        conn.execute(sa.update(table).where(table.c.id == job_id).values(job_state=pickle.dumps(state)))


def _ids(db: sa.Engine) -> set[str]:
    table = sa.Table(scheduler.JOB_TABLE, sa.MetaData(), autoload_with=db)
    with db.connect() as conn:
        return set(conn.execute(sa.select(table.c.id)).scalars())


def test_a_job_stored_under_a_moved_path_is_removed(tmp_path: Path) -> None:
    """A row naming `publisher.jobs:digest` (the path before the move) is removed; a loadable one stays."""
    db = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    _store_job(db, "digest", "publisher.jobs:digest")
    _store_job(db, "publish", "publisher.schedule.jobs:publish_new")
    assert scheduler.drop_unloadable_jobs(db) == ["digest"]
    assert _ids(db) == {"publish"}


def test_no_job_table_no_work(tmp_path: Path) -> None:
    """A database the scheduler never used has nothing to remove."""
    assert scheduler.drop_unloadable_jobs(open_store(f"sqlite:///{tmp_path / 'p.db'}")) == []


def test_the_daemon_starts_over_a_stale_row(tmp_path: Path) -> None:
    """With an old `digest` row and no digest configured, registering the jobs does not fail on it."""
    (tmp_path / "content").mkdir()
    (tmp_path / "config.toml").write_text(
        '[publication]\ntitle = "T"\nurl = "https://example.org/"\npostal_address = "1 Test Street"\n'
        '[newsletter]\nfrom = "T <t@example.org>"\n'
    )
    config = load_config(tmp_path / "config.toml", env={"PUBLISHER_SECRET": "k" * 32})
    db = open_store(config.store_url)
    _store_job(db, "digest", "publisher.jobs:digest")
    rt = jobs.Runtime(config=config, db=db)
    sched = scheduler.create_scheduler(rt)
    scheduler.start_daemon_jobs(sched, str(tmp_path / "config.toml"), rt)
    sched.start(paused=True)
    try:
        assert sched.get_job("digest") is None
        assert sched.get_job("publish") is not None
    finally:
        sched.shutdown(wait=False)
