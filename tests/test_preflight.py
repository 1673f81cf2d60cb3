"""Checks before a send, and the editor's form to file and back."""

from __future__ import annotations

import base64
import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from publisher import preflight
from publisher.config import parse_config
from publisher.dkim_signing import DkimKey, DkimSigner
from publisher.models import Article
from publisher.web.desk.editing import parse_fields, to_text

CONFIG = """
[publication]
title = "Harbor Light Notes"
url = "https://notes.example.org/"
postal_address = "1 Harbor Road"

[newsletter]
from = "Dana <dana@notes.example.org>"
clip_warning_bytes = 2000
"""
ARTICLE = Article(
    slug="sleep", title="Sleep", date=datetime(2026, 1, 1, tzinfo=UTC), html="<p>x</p>",
    id="notes.example.org,2026-01-01:sleep", url="https://notes.example.org/sleep/", summary="Rest well.",
)
GOOD = (
    '<p><img src="https://notes.example.org/a.jpg" alt="A bed"></p>'
    '<a href="https://notes.example.org/rest/">rest</a> 1 Harbor Road '
    '<a href="https://notes.example.org/unsubscribe/preview">sample</a> '
    '<a href="https://app.example.org/unsubscribe/t">Unsubscribe</a>'
)


def run(html: str, *, subject: str = "Sleep", pages: tuple[str, ...] = ("/rest/",),
        spam: tuple[float, float] | None = None) -> dict[str, preflight.Check]:
    config = parse_config(CONFIG, root=Path("."))
    found = preflight.checks(
        config, ARTICLE, subject=subject, html=html, text="x /unsubscribe/t", page_exists=lambda p: p in pages,
        spam=spam,
    )
    return {c.name: c for c in found}


def test_a_good_issue_passes_every_check() -> None:
    """Short subject, preheader, alt text, live own links, small, address and unsubscribe."""
    found = run(GOOD, spam=(1.2, 5.0))
    assert all(c.ok for name, c in found.items() if name != "Links to other sites"), found


def test_each_problem_is_named() -> None:
    """A long subject, a missing alt, a dead own link, a big body, no address and a spam score fail."""
    bad = '<img src="https://notes.example.org/b.jpg"><a href="https://notes.example.org/gone/">x</a>' + "x" * 3000
    found = run(bad, subject="S" * 90, spam=(7.5, 5.0))
    for name in ("Subject length", "Images have alt text", "Links to your site", "Size", "Postal address",
                 "Unsubscribe link", "Spam score"):
        assert found[name].ok is False, name
    assert "cut in every inbox" in found["Subject length"].detail
    assert "b.jpg" in found["Images have alt text"].detail
    assert "/gone/" in found["Links to your site"].detail


def test_without_spamassassin_the_score_is_not_checked() -> None:
    """No spamassassin on the server: said so, neither passed nor failed."""
    assert run(GOOD)["Spam score"].ok is None


def test_dns_records_carry_the_dkim_key() -> None:
    """The DKIM record holds the public half of the configured key; SPF and DMARC name the domain."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    config = parse_config(CONFIG, root=Path("."))
    signer = DkimSigner(domain="notes.example.org", keys=(DkimKey(selector="news", key=key),))
    records = preflight.dns_records(config, signer)
    names = [r.name for r in records]
    assert names == ["notes.example.org", "news._domainkey.notes.example.org", "_dmarc.notes.example.org"]
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert records[1].value == f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def test_the_editor_keeps_keys_it_does_not_show() -> None:
    """Form fields go back into the file; image, send_at and the like stay as they were."""
    text = "---\ntitle: Old\ndate: 2026-01-01 09:00\ntags: [a]\nimage: /i.jpg\nsend_at: 2026-02-01 08:00\n---\n\nBody\n"
    fields = parse_fields(text)
    assert (fields.title, fields.date, fields.tags, fields.body) == ("Old", "2026-01-01 09:00", "a", "Body\n")
    again = to_text(dataclasses.replace(fields, title="New: yes"), text)
    assert "title: 'New: yes'" in again and "image: /i.jpg" in again and "send_at: 2026-02-01 08:00" in again
    assert parse_fields(again).title == "New: yes"


def test_spamassassin_reads_the_issue_where_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a `spamassassin` on PATH, the issue goes to it on stdin and its score is reported."""
    program = tmp_path / "spamassassin"
    program.write_text(
        "#!/bin/sh\ncat > \"$(dirname \"$0\")/seen.eml\"\n"
        "printf 'X-Spam-Status: Yes, score=6.1 required=5.0 tests=FOO\\n\\nbody\\n'\n",
        encoding="utf-8",
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    config = parse_config(CONFIG, root=tmp_path)
    found, _ = preflight.run_checks(config, ARTICLE, subject="Sleep", html=GOOD, text="x /unsubscribe/t")
    spam = {c.name: c for c in found}["Spam score"]
    assert spam.ok is False and "6.1" in spam.detail
    assert b"Subject: Sleep" in (tmp_path / "seen.eml").read_bytes()


def test_a_date_with_an_offset_keeps_it() -> None:
    """A date written with its UTC offset is shown and saved with it, not moved into the local zone."""
    text = "---\ntitle: T\ndate: 2026-02-10T07:30:00+01:00\n---\n\nBody\n"
    fields = parse_fields(text)
    assert fields.date == "2026-02-10 07:30+01:00"
    assert "date: 2026-02-10 07:30+01:00" in to_text(fields, text)
