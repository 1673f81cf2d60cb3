"""store/glance.py: `publisher status` without SQLAlchemy gives the store's own answer."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.store import ledger, open_store
from publisher.store.glance import issue_lines
from publisher.store.schema import deliveries, subscribers

STATES = ("queued", "sending", "sent", "retry", "failed", "skipped")
NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def seeded(path: Path, issues: int, readers: int) -> sa.Engine:
    db = open_store(f"sqlite:///{path}")
    with db.begin() as conn:
        conn.execute(sa.insert(subscribers), [
            {"email": f"r{n}@example.org", "status": "active", "created_at": NOW, "updated_at": NOW}
            for n in range(readers)
        ])
    for n in range(issues):
        issue = ledger.create_issue(
            db, key=f"issue-{n}", kind="article", slug=f"slug-{n}" if n % 3 else "", subject=f"Subject {n}",
            html="<p>x</p>", text="x", tag=None, status=("sending", "sent")[n % 2], now=NOW + timedelta(minutes=n),
        )
        if n % 4 != 3:  # some issues have no deliveries at all
            ledger.enqueue(db, issue, now=NOW)
    return db


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), issues=st.integers(0, 6), readers=st.integers(1, 12))
def test_the_glance_equals_the_ledger(
    tmp_path_factory: pytest.TempPathFactory, seed: int, issues: int, readers: int
) -> None:
    folder = tmp_path_factory.mktemp("glance")
    db = seeded(folder / "publisher.db", issues, readers)
    pick = random.Random(seed)
    with db.begin() as conn:
        for (row_id,) in conn.execute(sa.select(deliveries.c.id)).all():
            conn.execute(sa.update(deliveries).where(deliveries.c.id == row_id).values(
                state=pick.choice(STATES), uncertain=pick.random() < 0.3))
    url = f"sqlite:///{folder / 'publisher.db'}"
    assert issue_lines(url) == ledger.status(db)
    assert issue_lines(url, limit=2) == ledger.status(db, limit=2)
    db.dispose()


def test_anything_unusual_is_left_to_the_store(tmp_path: Path) -> None:
    """PostgreSQL, no file yet, an older schema, or not a database: None, so the caller
    opens the store, which migrates or explains."""
    assert issue_lines("postgresql://publisher@127.0.0.1/publisher") is None
    assert issue_lines(f"sqlite:///{tmp_path / 'absent.db'}") is None
    assert issue_lines("sqlite:///relative.db") is None
    (tmp_path / "text.db").write_text("not a database")
    assert issue_lines(f"sqlite:///{tmp_path / 'text.db'}") is None
    db = seeded(tmp_path / "old.db", 1, 1)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    db.dispose()
    assert issue_lines(f"sqlite:///{tmp_path / 'old.db'}") is None


def test_status_lists_issues_without_importing_sqlalchemy(tmp_path: Path) -> None:
    seeded(tmp_path / "publisher.db", 2, 3).dispose()
    (tmp_path / "config.toml").write_text(
        '[publication]\ntitle = "T"\nurl = "https://example.org/"\npostal_address = "1 Test Street"\n'
        '[newsletter]\nfrom = "T <news@example.org>"\n'
    )
    probe = (
        "import sys\n"
        "from publisher.cli import main\n"
        "try:\n    main(['status'])\n"
        "except SystemExit:\n    pass\n"
        "print('sqlalchemy loaded:', any(m.startswith('sqlalchemy') for m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PUBLISHER_SECRET": "s" * 40, "COLUMNS": "200"},
                          timeout=60)
    assert "slug-1" in done.stdout and "issue-0" in done.stdout, done.stdout + done.stderr
    assert "sqlalchemy loaded: False" in done.stdout, done.stdout + done.stderr
