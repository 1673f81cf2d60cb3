"""A scriptable HTTP API server on 127.0.0.1 that records every request.

    api = FakeAPI().start()          # or the `fake_api` fixture
    api.handler = vendors.postmark("token")     # answer like the vendor, checking shapes
    api.script(Reply.rate_limited(7))           # the next request gets this instead
    ... point a client at api.url ...
    api.requests[0].json()                      # what arrived
    api.close()

Replies are taken from the script first (FIFO), then from `handler(request)`, then the
default (200 with `{}`). A `Reply` with `delay` sleeps before answering, which is how a
test makes the server hang past a client's timeout; closing the server wakes sleepers.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeAPI", "RecordedRequest", "Reply"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """Fields of a multipart/form-data or urlencoded body, each a list of values."""
        kind = self.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {kind}\r\n\r\n".encode() + self.body
            )
            fields: dict[str, list[str]] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                value = payload.decode("utf-8") if isinstance(payload, bytes) else ""
                fields.setdefault(str(name), []).append(value)
            return fields
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def ok(cls, payload: Any = None, status: int = 200, **headers: str) -> Reply:
        return cls(status=status, json=payload, headers=headers)

    @classmethod
    def error(cls, status: int, payload: Any = None) -> Reply:
        return cls(status=status, json=payload if payload is not None else {"message": "refused"})

    @classmethod
    def rate_limited(cls, retry_after: str | int = 30) -> Reply:
        return cls(status=429, json={"message": "Too many requests"},
                   headers={"Retry-After": str(retry_after)})

    @classmethod
    def server_error(cls, status: int = 503) -> Reply:
        return cls(status=status, body=b"<html>upstream unavailable</html>",
                   headers={"Content-Type": "text/html"})

    @classmethod
    def hang(cls, seconds: float = 10.0) -> Reply:
        return cls(delay=seconds)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        body = self.body
        if self.json is not None:
            body = json.dumps(self.json).encode()
            headers.setdefault("Content-Type", "application/json")
        return body, headers


Handler = Callable[[RecordedRequest], Reply]


class FakeAPI:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.problems: list[str] = []
        """Shape problems a vendor handler found (it answered 400 for them)."""
        self.handler: Handler | None = None
        self.default = Reply.ok({})
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, before the handler."""
        with self._lock:
            self._script.extend(replies)

    def start(self) -> FakeAPI:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                reply = fake._answer(request)
                if reply.delay and fake._closing.wait(reply.delay):
                    return
                payload, headers = reply.encoded()
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test): nothing to tell it

            do_POST = do_GET = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
        if self.handler is None:
            return self.default
        try:
            return self.handler(request)
        except AssertionError as exc:
            with self._lock:
                self.problems.append(str(exc))
            return Reply.error(400, {"message": f"fake: bad request shape: {exc}"})

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
