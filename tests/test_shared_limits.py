"""The API's per-key rate limit holds across processes: counted in the store, not in each one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from web_support import SECRET, make_publication

from publisher.api.limits import SharedLimit
from publisher.services import access
from publisher.store import open_store

TESTS = Path(__file__).parent
LIMIT = 30
EACH = 30

HAMMER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from web_support import AppClient
from publisher.config import load_config
from publisher.store import open_store
from publisher.web import create_app
config = load_config(Path({root!r}) / "config.toml", env={{"PUBLISHER_SECRET": {secret!r}}})
db = open_store(config.store_url)
client = AppClient(create_app(config, engine=db))
go = Path({root!r}) / "go"
while not go.exists():
    time.sleep(0.01)
answers = [client.request("GET", "/api/v1/tags", headers={{"authorization": "Bearer {token}"}}).status_code
           for _ in range({each})]
print(json.dumps(answers))
"""


def test_three_processes_hammering_one_key_pass_the_limit_once_between_them(tmp_path: Path) -> None:
    """Three app processes on one store let one key through api.rate_limit times in all, not three times."""
    config = make_publication(tmp_path, extra=f"\n[api]\nrate_limit = {LIMIT}\n")
    db = open_store(config.store_url)
    token = access.create_key(db, "hammer", ["subscribers:read"], now=datetime.now(UTC)).token
    db.dispose()
    script = HAMMER.format(tests=str(TESTS), root=str(tmp_path), secret=SECRET, token=token, each=EACH)
    env = {**os.environ, "PUBLISHER_SECRET": SECRET}
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(3)
    ]
    time.sleep(3.0)  # each process imports and opens the store before the start
    started = time.monotonic()
    (tmp_path / "go").touch()
    answers: list[int] = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        answers += json.loads(out)
    elapsed = time.monotonic() - started
    refilled = int(elapsed * LIMIT / 60.0) + 1  # the bucket refills while they run
    assert set(answers) <= {200, 429}
    assert LIMIT <= answers.count(200) <= LIMIT + refilled
    assert answers.count(429) >= 3 * EACH - LIMIT - refilled


def test_two_limits_on_one_store_share_a_key_count(tmp_path: Path) -> None:
    """A second process's limit sees the requests the first one let through."""
    config = make_publication(tmp_path)
    db = open_store(config.store_url)
    first, second = SharedLimit(db, 100, 60.0), SharedLimit(db, 100, 60.0)
    now = time.time()
    passed = sum(1 for i in range(150) if (first if i % 2 else second).hit("k1", now) == 0.0)
    db.dispose()
    assert passed == 100


def test_a_refused_request_is_told_when_a_token_is_back(tmp_path: Path) -> None:
    """Past the limit the wait is the time one request's worth takes to refill, at least a second."""
    config = make_publication(tmp_path)
    db = open_store(config.store_url)
    limit = SharedLimit(db, 6, 60.0)
    now = time.time()
    waits = [limit.hit("k2", now) for _ in range(7)]
    db.dispose()
    assert waits == [0.0] * 6 + [10.0]


def test_a_store_that_cannot_be_written_falls_back_to_this_process(tmp_path: Path) -> None:
    """Without the store's budgets the key is still held to the limit, counted in memory."""
    db = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables: every write fails
    limit = SharedLimit(db, 3, 60.0)
    now = time.time()
    waits = [limit.hit("k3", now) for _ in range(4)]
    db.dispose()
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] >= 1.0
