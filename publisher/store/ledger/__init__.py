"""The delivery ledger: one row per (issue, subscriber), the truth of what was sent.

A row's life: `queued` -> `sending` (claimed by one worker) -> `sent` | `retry` (back to
claimable at `not_before`) | `failed` (permanent) | `skipped` (the subscriber left before
the row was claimed); a waiting row the provider can never deliver (`fail_non_ascii`)
goes straight to `failed`. A worker that dies leaves its rows in `sending`; `recover` puts them
back to `queued` with `uncertain` set, because the provider may have taken them already.
`record` sets it too on a retry whose attempt got no answer after the message left (a
timeout): the next attempt may deliver a second copy, and that is reported, not hidden.

Every write here is a single transaction whose first statement writes, so that SQLite
takes its one write lock at once (waiting on the busy timeout) instead of failing to
upgrade a read snapshot; on PostgreSQL claims use `FOR UPDATE SKIP LOCKED`, so that
several worker processes split the queue without blocking each other.

The issue snapshots the rows point at live in `publisher.store.issues`; their functions
are re-exported here so that callers work with one module, as are the parts':

    rows.py      a row's states, the rows a worker claims or recovers, worker ids
    writing.py   `enqueue` (the audience's rows, in one transaction), retries, cancelling
    claiming.py  `claim`, `release`, `record`: a worker's batch and each answer
    recovery.py  `recover` after a crash, what is due, issues that are finished
"""

from __future__ import annotations

from publisher.store.issues import (
    FailedDelivery,
    IssueSnapshot,
    IssueStatus,
    create_issue,
    failure_reasons,
    failures,
    find_issue,
    get_issue,
    is_frozen,
    issue_states,
    refresh_issue,
    status,
)
from publisher.store.ledger.claiming import claim, defer, record, release
from publisher.store.ledger.recovery import count_due, finish_issues, next_due, recover
from publisher.store.ledger.rows import (
    CLAIMABLE,
    ClaimedRow,
    RecordPolicy,
    Recovered,
    RecoveredRow,
    new_worker_id,
    worker_is_dead,
)
from publisher.store.ledger.writing import (
    cancel_queued,
    count_audience,
    count_new_recipients,
    count_non_ascii,
    enqueue,
    fail_non_ascii,
    local_not_before,
    retry_failed,
)

__all__ = [
    "CLAIMABLE",
    "ClaimedRow",
    "FailedDelivery",
    "IssueSnapshot",
    "IssueStatus",
    "RecordPolicy",
    "Recovered",
    "RecoveredRow",
    "cancel_queued",
    "claim",
    "count_audience",
    "count_due",
    "count_new_recipients",
    "count_non_ascii",
    "create_issue",
    "defer",
    "enqueue",
    "fail_non_ascii",
    "failure_reasons",
    "failures",
    "find_issue",
    "finish_issues",
    "get_issue",
    "is_frozen",
    "issue_states",
    "local_not_before",
    "new_worker_id",
    "next_due",
    "record",
    "recover",
    "refresh_issue",
    "release",
    "retry_failed",
    "status",
    "worker_is_dead",
]
