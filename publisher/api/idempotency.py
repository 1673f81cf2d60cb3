"""`Idempotency-Key` on POST: a retried request gets the first answer and does nothing twice.

As Stripe does it: the key is the client's (at most 255 characters), scoped to the API
key that sent it and kept for a day. The first request with a key runs and its answer is
stored; a later one with the same method, path and body gets that answer again, marked
`Idempotent-Replayed: true`; one with a different body gets 409, and so does one that
arrives while the first is still running. Answers that did nothing (401, 403, 429, 5xx)
are not stored, so a retry after fixing the cause runs. Only a live key's requests are
looked up: a revoked key cannot read back an answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.api import problems
from publisher.services import access

__all__ = ["HEADER", "KEY_PATTERN", "MAX_KEY", "IdempotencyKeys"]

HEADER = "idempotency-key"
MAX_KEY = 255
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"
"""Visible ASCII, spaces only inside: what survives every HTTP client and proxy unchanged."""
_KEY = re.compile(KEY_PATTERN)
_NOT_STORED = frozenset({401, 403, 429})


class IdempotencyKeys:
    def __init__(self, app: ASGIApp, *, db: Engine, clock: Callable[[], datetime]) -> None:
        self.app = app
        self.db = db
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not key or len(key) > MAX_KEY or not _KEY.fullmatch(key):
            response = problems.problem_response(
                problems.BAD_IDEMPOTENCY_KEY,
                f"Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters (spaces only inside)",
            )
            await response(scope, receive, send)
            return
        authorization = headers.get("authorization", "")
        token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
        api_key = await run_in_threadpool(access.authenticate, self.db, token)
        if api_key is None:
            await self.app(scope, receive, send)  # refused there; nothing to store
            return
        body = await _read_body(receive)
        digest = hashlib.sha256()
        for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1")):
            digest.update(part.encode() + b"\0")
        digest.update(body)
        found = await run_in_threadpool(
            access.claim_request, self.db, api_key.id, key, digest.hexdigest(), now=self.clock()
        )
        if isinstance(found, access.Running):
            response = problems.problem_response(
                problems.IDEMPOTENCY_RUNNING, "the first request with this Idempotency-Key is still running; "
                "retry in a moment", headers={"retry-after": "1"},
            )
            await response(scope, receive, send)
            return
        if isinstance(found, access.Replay):
            if not found.same_request:
                response = problems.problem_response(
                    problems.IDEMPOTENCY_REUSED, "this Idempotency-Key was used for a different request; "
                    "use a new key for a new request",
                )
                await response(scope, receive, send)
                return
            await _replay(send, found)
            return
        await self._run_and_store(scope, body, send, found.record_id)

    async def _run_and_store(self, scope: Scope, body: bytes, send: Send, record_id: int) -> None:
        start: Message = {}
        chunks: list[bytes] = []
        sent_body = False

        async def replay_body() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await run_in_threadpool(access.release_request, self.db, record_id)
            raise
        status = int(start.get("status", 500))
        if status in _NOT_STORED or status >= 500:
            await run_in_threadpool(access.release_request, self.db, record_id)
            return
        content_type = Headers(raw=start.get("headers", [])).get("content-type", "")
        text = b"".join(chunks).decode("utf-8", "replace")
        await run_in_threadpool(
            access.finish_request, self.db, record_id, status=status, content_type=content_type, body=text
        )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _replay(send: Send, found: access.Replay) -> None:
    body = found.body.encode()
    headers = [
        (b"content-type", found.content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        (b"idempotent-replayed", b"true"),
    ]
    await send({"type": "http.response.start", "status": found.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
