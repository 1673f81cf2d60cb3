"""Property-based fuzzing of every HTTP endpoint, and the inventory of what the app mounts.

The property: an answer below 500 (the in-process transport raises any exception the
app lets through), in bounded time, and no subscriber or event row changed by a request
that was refused (4xx). Webhooks are fuzzed unsigned (always refused) and correctly
signed with garbage inside (the parsers behind the signature see hostile JSON).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fuzz_support import FUZZ_SCALE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from starlette.routing import Mount, Route
from test_web_webhooks import (
    EC_PUBLIC,
    MAILGUN_KEY,
    POSTMARK_SECRET,
    RESEND_SECRET,
    TOPIC,
    Fetcher,
    basic,
    mailgun_signature,
    sendgrid_headers,
    sns_message,
    svix_headers,
)
from web_support import SECRET, AppClient, make_publication

from publisher.config import Config
from publisher.mail import tokens
from publisher.store import open_store, subscribers
from publisher.store.schema import deliveries, events
from publisher.store.schema import subscribers as subscriber_rows
from publisher.web import create_app
from publisher.web.app import APP_PATHS, APP_PREFIXES

ADDRESSES = ("ann@example.org", "bob@example.org", "cy@example.org")


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples * FUZZ_SCALE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


class Site:
    """One publication, its app in-process and a view of the rows a refusal must not touch."""

    def __init__(self, root: Path) -> None:
        self.config: Config = make_publication(
            root,
            extra=f'\n[webhooks]\nses_topic_arns = ["{TOPIC}"]\n',
            env={
                "PUBLISHER_POSTMARK_WEBHOOK_SECRET": POSTMARK_SECRET,
                "PUBLISHER_SENDGRID_WEBHOOK_PUBLIC_KEY": EC_PUBLIC,
                "PUBLISHER_MAILGUN_WEBHOOK_KEY": MAILGUN_KEY,
                "PUBLISHER_RESEND_WEBHOOK_SECRET": RESEND_SECRET,
            },
        )
        self.engine: Engine = open_store(self.config.store_url)
        for address in ADDRESSES:
            subscribers.add(self.engine, address, now=_now())
        self.app = create_app(self.config, engine=self.engine, fetch=Fetcher())

    def client(self, ip: str = "203.0.113.9") -> AppClient:
        return AppClient(self.app, client=(ip, 50000))

    def rows(self) -> tuple[Any, ...]:
        with self.engine.connect() as conn:
            return tuple(
                tuple(tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key.columns)))
                for table in (subscriber_rows, events, deliveries)
            )

    def token_key(self, address: str) -> str:
        found = subscribers.find(self.engine, address)
        assert found is not None
        return subscribers.link_key(self.engine, found.id)


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    made = Site(tmp_path_factory.mktemp("fuzz-http"))
    yield made
    made.engine.dispose()


def _check(site: Site, before: tuple[Any, ...], status: int, *, may_change: bool = True) -> None:
    assert status < 500, status
    if status >= 400 or not may_change:
        assert site.rows() == before, f"rows changed by a request answered {status}"


TEXT = st.text(max_size=60)
HOSTILE = st.sampled_from([
    "", "a@b", "ann@example.org", "ANN@EXAMPLE.ORG", "x" * 400 + "@example.org", "a@b.c\r\nBcc: x@y.z",
    "<script>alert(1)</script>@x.org", "\x00@x.org", "ann@example.org\x00", "a@[127.0.0.1]", "\"a b\"@x.org",
    "a@xn--.org", "bob@münchen.de", "../../etc/passwd", "%00", "\u202e@x.org",
])
FIELD = st.one_of(TEXT, HOSTILE)
FORMS = st.dictionaries(
    st.one_of(st.sampled_from(["email", "name", "website", "tag", "email[]"]), TEXT), FIELD, max_size=6
)
JSON: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT, HOSTILE),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(TEXT, st.sampled_from([
            "email", "event", "type", "reason", "sg_event_id", "recipient", "severity", "id", "RecordType",
            "Type", "Email", "ID", "Inactive", "notificationType", "bounce", "complaint", "bounceType",
            "bouncedRecipients", "complainedRecipients", "emailAddress", "data", "to", "event-data",
            "signature", "timestamp", "token",
        ])), inner, max_size=5),
    ),
    max_leaves=12,
)
BODIES = st.one_of(st.binary(max_size=300), JSON.map(lambda v: json.dumps(v).encode()))
HEADERS = st.dictionaries(
    st.sampled_from([
        "content-type", "authorization", "x-twilio-email-event-webhook-signature",
        "x-twilio-email-event-webhook-timestamp", "svix-id", "svix-timestamp", "svix-signature",
        "x-amz-sns-message-type", "x-forwarded-for", "content-encoding",
    ]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    max_size=4,
)


@fuzz(80)
@given(form=FORMS, ip=st.ip_addresses(v=4).map(str), as_json=st.booleans())
def test_subscribe_form_fuzz(site: Site, form: dict[str, str], ip: str, as_json: bool) -> None:
    """Any form to POST /subscribe: an answer below 500; a refusal changes no row."""
    before = site.rows()
    client = site.client(ip)
    answer = client.post("/subscribe", json=form) if as_json else client.post("/subscribe", data=form)
    _check(site, before, answer.status_code)


@fuzz(80)
@given(
    kind=st.sampled_from(["confirm", "unsubscribe"]),
    token=st.one_of(TEXT, HOSTILE, st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode())),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    body=st.one_of(st.binary(max_size=100), st.just(b"List-Unsubscribe=One-Click")),
)
def test_token_links_fuzz(site: Site, kind: str, token: str, method: str, body: bytes) -> None:
    """Any token, any method, any body at /confirm/ and /unsubscribe/: below 500, and a
    token we never made changes nothing."""
    before = site.rows()
    path = f"/{kind}/" + "".join(ch if ch.isprintable() and ch not in "?#" else f"%{ord(ch) % 256:02X}"
                                 for ch in token)
    answer = site.client().request(
        method, path, content=body if method == "POST" else None,
        headers={"content-type": "application/x-www-form-urlencoded"} if method == "POST" else {},
    )
    _check(site, before, answer.status_code, may_change=False)


@fuzz(30)
@given(body=st.binary(max_size=200), address=st.sampled_from(ADDRESSES))
def test_valid_unsubscribe_link_with_any_body(site: Site, body: bytes, address: str) -> None:
    """A genuine unsubscribe link with any POST body: below 500, and a refusal changes nothing."""
    token = tokens.sign(SECRET, "unsubscribe", site.token_key(address))
    before = site.rows()
    answer = site.client().post(f"/unsubscribe/{token}", content=body,
                                headers={"content-type": "application/x-www-form-urlencoded"})
    _check(site, before, answer.status_code)


PROVIDERS = st.sampled_from(["postmark", "sendgrid", "mailgun", "ses", "resend", "other", "", "..%2f"])


@fuzz(120)
@given(provider=PROVIDERS, body=BODIES, headers=HEADERS, query=st.dictionaries(TEXT, TEXT, max_size=2))
def test_unsigned_webhooks_fuzz(site: Site, provider: str, body: bytes, headers: dict[str, str],
                                query: dict[str, str]) -> None:
    """Any body and headers without a valid signature: refused below 500, nothing changed."""
    before = site.rows()
    answer = site.client().post(f"/webhooks/{provider}", content=body, headers=headers, params=query)
    assert answer.status_code >= 300  # refused, or a redirect of a path that names no provider
    _check(site, before, answer.status_code, may_change=False)


def _signed(provider: str, payload: Any, raw: bytes, data: st.DataObject) -> tuple[bytes, dict[str, str]]:
    """A call the provider's signature check accepts, carrying `payload` (or `raw` bytes)."""
    body = json.dumps(payload).encode() if data.draw(st.booleans()) else raw
    if provider == "postmark":
        return body, {"content-type": "application/json", "authorization": basic("u", POSTMARK_SECRET)}
    if provider == "sendgrid":
        return body, sendgrid_headers(body)
    if provider == "resend":
        return body, svix_headers(body)
    if provider == "mailgun":
        token = data.draw(st.text(alphabet="abcdef0123456789", min_size=50, max_size=50))
        proof = mailgun_signature(str(int(time.time())), token)
        if data.draw(st.booleans()):
            return json.dumps({"signature": proof, "event-data": payload}).encode(), {
                "content-type": "application/json"}
        form = {**proof, **{str(k)[:30]: str(v)[:100] for k, v in (payload.items() if isinstance(payload, dict)
                                                                    else {})}}
        return urlencode(form).encode(), {"content-type": "application/x-www-form-urlencoded"}
    message = sns_message(payload if isinstance(payload, dict) else {"notificationType": payload})
    if data.draw(st.booleans()):
        message["SigningCertURL"] = data.draw(st.sampled_from([
            "https://sns.us-east-1.amazonaws.com:99999/x.pem", "https://[x/", "http://evil.example/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem?q=1", "",
        ]))
    return json.dumps(message).encode(), {"content-type": "text/plain; charset=UTF-8",
                                          "x-amz-sns-message-type": "Notification"}


@fuzz(120)
@given(provider=st.sampled_from(["postmark", "sendgrid", "mailgun", "ses", "resend"]), payload=JSON,
       raw=st.binary(max_size=200), data=st.data())
def test_signed_webhooks_fuzz(site: Site, provider: str, payload: Any, raw: bytes, data: st.DataObject) -> None:
    """Correctly signed calls carrying hostile JSON: below 500; a refusal changes nothing."""
    body, headers = _signed(provider, payload, raw, data)
    before = site.rows()
    answer = site.client().post(f"/webhooks/{provider}", content=body, headers=headers)
    _check(site, before, answer.status_code)


# The route inventory

PUBLIC_ROUTES = {
    ("/healthz", frozenset({"GET", "HEAD"})),
    ("/subscribe", frozenset({"GET", "HEAD"})),
    ("/subscribe", frozenset({"POST"})),
    ("/confirm/{token:path}", frozenset({"GET", "HEAD"})),
    ("/confirm/{token:path}", frozenset({"POST"})),
    ("/unsubscribe/{token:path}", frozenset({"GET", "HEAD"})),
    ("/unsubscribe/{token:path}", frozenset({"POST"})),
    ("/webhooks/{provider}", frozenset({"POST"})),
    # The reader's own page, reached only with the signed token of their unsubscribe link.
    ("/manage/{token:path}", frozenset({"GET", "HEAD"})),
    ("/manage/{token:path}", frozenset({"POST"})),
    ("/desk", frozenset({"GET", "HEAD"})),  # a redirect to /desk/, which asks for a session
    # Signup anywhere: a topic's page, the JSON door (CORS only for allowed sites) and its script.
    ("/subscribe/{topic}", frozenset({"GET", "HEAD"})),
    ("/subscribe/{topic}", frozenset({"POST"})),
    ("/subscribe.json", frozenset({"OPTIONS"})),
    ("/subscribe.json", frozenset({"POST"})),
    ("/subscribe.js", frozenset({"GET", "HEAD"})),
    # Private analytics (off by default): the pixel and the signed click links, each token signed.
    ("/o/{token:path}", frozenset({"GET", "HEAD"})),
    ("/c/{token:path}", frozenset({"GET", "HEAD"})),
}
"""Every route the app mounts, all public (no login): a new one must be added here, on purpose."""


PRIVATE_MOUNTS = {"/api/v1", "/desk"}
"""Mounted apps: every API operation needs a key (test_api_needs_a_key), every desk page a
session (tests/test_desk_auth.py walks each desk route without one)."""


def test_route_inventory(site: Site) -> None:
    """The app mounts exactly the routes and apps listed, and answers only those paths itself."""
    routes = {
        (route.path, frozenset(route.methods or ()))
        for route in site.app.routes
        if isinstance(route, Route)
    }
    mounts = {route.path for route in site.app.routes if isinstance(route, Mount)}
    assert routes == PUBLIC_ROUTES
    assert mounts == PRIVATE_MOUNTS
    assert len(site.app.routes) == len(routes) + len(mounts)  # nothing of another kind hides
    for route in site.app.routes:
        path = route.path  # type: ignore[attr-defined]
        assert path in APP_PATHS or (path + "/").startswith(APP_PREFIXES), path


def test_api_needs_a_key(site: Site) -> None:
    """Every operation the API's OpenAPI document lists answers 401 without a key: nothing
    under /api/v1 is public but the document itself."""
    client = site.client()
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    operations = 0
    for path, methods in document.json()["paths"].items():
        concrete = "/api/v1" + re.sub(r"\{[^}]+\}", "1", path)
        for method in methods:
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                continue
            before = site.rows()
            answer = client.request(method.upper(), concrete, json={})
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert site.rows() == before
            operations += 1
    assert operations >= 20


SENTINEL = "sentinel-never-served-7f3a"


def test_no_route_serves_a_file_outside_the_manifest(site: Site) -> None:
    """Files beside and inside the output that the build did not write (a database, a
    config, a CSV, a secret, a dot-file, a stray page) come out of no route, by any path."""
    root = site.config.root
    public = root / "public"
    planted = {
        root / "subscribers.csv", root / "secret.txt", root / "notes.md", public / "stray.html",
        public / "publisher.db", public / ".env", public / "export.csv", public / "config.toml",
        public / "feeds" / "old.xml",
    }
    for path in planted:
        path.write_text(f"{SENTINEL} {path.name}\n")
    names = sorted({p.name for p in planted} | {"publisher.db", "config.toml"})
    paths = [f"/{name}" for name in names] + [f"/feeds/{name}" for name in names]
    for prefix in ("", "/feeds/..", "/%2e%2e", "/..", "/confirm/..", "/unsubscribe/../..", "/webhooks/..",
                   "/subscribe/..", "/healthz/..", "/api/v1/..", "/api/v1/subscribers/.."):
        paths += [f"{prefix}/{name}" for name in names]
    client = site.client()
    for path in paths:
        for method in ("GET", "HEAD", "POST"):
            answer = client.request(method, path)
            assert answer.status_code < 500, (method, path)
            assert SENTINEL.encode() not in answer.content, (method, path)
    assert b"<rss" in client.get("/feeds/rss.xml").content  # what the build wrote is served
