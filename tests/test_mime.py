"""Pre-encoded MIME: the spliced message is the message the stdlib would have built."""

from __future__ import annotations

import base64
import email
import email.policy
import functools
import re
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from types import MappingProxyType

import dkim
import pytest
from test_newsletter import GOLDEN, REGENERATE, make_article, make_config

from publisher.config import Config
from publisher.errors import ConfigError, SubscriberError
from publisher.mail import newsletter
from publisher.mail.mime import (
    HTML_PLACEHOLDERS,
    TEXT_PLACEHOLDERS,
    DkimSigner,
    MessageTemplate,
    Recipient,
    message_id_for,
)
from publisher.models import RenderedIssue

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UNSUB = "https://notes.example.org/unsubscribe/MTIz.abcdefghijklmnopqrstuvwxyz0123456789_-"
MANAGE = "https://notes.example.org/manage/MTIz.manage-link-0123456789"


@functools.cache
def _default_issue() -> RenderedIssue:
    config = make_config()
    return newsletter.render_issue(config, newsletter.issue_for_article(config, make_article()), NOW)


def rendered_issue(config: Config | None = None, title: str | None = None) -> RenderedIssue:
    if config is None and title is None:
        return _default_issue()
    config = config or make_config()
    article = make_article(title=title) if title else make_article()
    return newsletter.render_issue(config, newsletter.issue_for_article(config, article), NOW)


def make_template(config: Config | None = None, **kwargs: object) -> MessageTemplate:
    config = config or make_config()
    return MessageTemplate.from_rendered(config, rendered_issue(config), **kwargs)  # type: ignore[arg-type]


def reader(**fields: object) -> Recipient:
    values: dict[str, object] = {
        "delivery_id": 345,
        "email": "reader@example.com",
        "name": "Sam Reader",
        "unsubscribe_url": UNSUB,
        "message_id": message_id_for("i12.d345", "example.org"),
        "manage_url": MANAGE,
    }
    values.update(fields)
    return Recipient(**values)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def bodies(message: EmailMessage) -> tuple[str, str]:
    """The decoded (text, html), line ends as Python writes them."""
    text_part, html_part = message.iter_parts()
    text, html = text_part.get_content(), html_part.get_content()  # type: ignore[attr-defined]
    return str(text).replace("\r\n", "\n"), str(html).replace("\r\n", "\n")


def slow_message(template: MessageTemplate, recipient: Recipient, date: datetime) -> EmailMessage:
    """The same message built the obvious way, with the stdlib doing every encoding."""
    html, text = template.parts(recipient)
    message = EmailMessage()
    message["From"] = template.sender
    message["To"] = Address(display_name=recipient.name, addr_spec=recipient.email)
    message["Subject"] = template.subject
    message["Date"] = email.utils.format_datetime(date)
    if template.reply_to:
        message["Reply-To"] = template.reply_to
    for name, value in template.headers(recipient).items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def test_parses_as_multipart_alternative_text_then_html() -> None:
    """The message is multipart/alternative with text/plain first and text/html second."""
    message = parse(make_template().message_bytes(reader(), NOW))
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in message.iter_parts())


def test_same_as_the_slow_way() -> None:
    """Headers and decoded parts equal those of an EmailMessage built per recipient."""
    template = make_template()
    recipient = reader(name="Zoë Ça", email="zoe@example.com")
    fast = parse(template.message_bytes(recipient, NOW))
    slow = parse(slow_message(template, recipient, NOW).as_bytes(policy=email.policy.SMTP))
    for name in ("From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id",
                 "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert str(fast[name]) == str(slow[name]), name
    assert bodies(fast) == bodies(slow)


def test_parts_are_the_decoded_bodies() -> None:
    """parts() returns exactly what a reader of message_bytes() sees."""
    template = make_template()
    recipient = reader(name='Ann "A&B" <Lee>')
    html, text = template.parts(recipient)
    assert bodies(parse(template.message_bytes(recipient, NOW))) == (text, html)


def test_values_are_spliced_into_both_parts() -> None:
    """The unsubscribe URL and the address replace the placeholders in text and HTML."""
    template = make_template()
    text, html = bodies(parse(template.message_bytes(reader(), NOW)))
    assert f"Unsubscribe with one click: {UNSUB}\n" in text
    assert f'<a href="{UNSUB}"' in html
    assert "This copy was sent to reader@example.com." in html
    assert not re.search(r"__pub_\w+__", text + html)


def test_the_manage_link_is_spliced_into_both_parts() -> None:
    """Each reader's "manage your subscription" link replaces its placeholders, escaped for HTML."""
    template = make_template()
    text, html = bodies(parse(template.message_bytes(reader(), NOW)))
    assert f"Manage your subscription (how often, which topics): {MANAGE}\n" in text
    assert f'<a href="{MANAGE}"' in html and ">Manage your subscription</a>" in html
    odd = MANAGE + "?a=1&b=2"
    subs = template.substitutions(reader(manage_url=odd))
    assert subs[HTML_PLACEHOLDERS.manage_url] == MANAGE + "?a=1&amp;b=2"
    assert subs[TEXT_PLACEHOLDERS.manage_url] == odd
    assert bodies(parse(template.message_bytes(reader(manage_url=odd), NOW)))[0].count(odd) == 1


def test_without_a_manage_link_the_unsubscribe_page_stands_in() -> None:
    """A copy made without one (a preview, a test copy) links the unsubscribe page, never an empty href."""
    html, text = make_template().parts(reader(manage_url=""))
    assert 'href=""' not in html
    assert f"Manage your subscription (how often, which topics): {UNSUB}\n" in text


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "https://x.example/\r\nBcc: a@b", "/manage/relative"])
def test_a_manage_link_that_is_not_an_absolute_url_is_refused(bad: str) -> None:
    """No header or markup injection through the manage link: it must be an absolute http(s) URL."""
    with pytest.raises(ValueError, match="manage URL"):
        make_template().message_bytes(reader(manage_url=bad), NOW)


def test_html_values_are_escaped_text_values_are_not() -> None:
    """An address with markup is escaped in HTML and kept as typed in the text."""
    template = make_template()
    recipient = reader(name="<b>Bold</b> & co")
    html, _text = template.parts(recipient)
    subs = template.substitutions(recipient)
    assert subs[HTML_PLACEHOLDERS.name] == "&lt;b&gt;Bold&lt;/b&gt; &amp; co"
    assert subs[TEXT_PLACEHOLDERS.name] == "<b>Bold</b> & co"
    assert subs[TEXT_PLACEHOLDERS.unsubscribe_url] == UNSUB
    assert "<b>Bold</b>" not in html


def test_all_headers_present() -> None:
    """Every header DESIGN.md lists is there, once."""
    raw = make_template().message_bytes(reader(), NOW)
    message = parse(raw)
    assert message["From"] == "Dana Reyes <notes@example.org>"
    assert message["To"] == "Sam Reader <reader@example.com>"
    assert message["Subject"] == "Rest and repair: what a pause does"
    assert message["Date"] == "Sun, 01 Mar 2026 12:00:00 +0000"
    assert message["Message-ID"] == "<i12.d345@example.org>"
    assert message["MIME-Version"] == "1.0"
    assert message["Reply-To"] == "Dana Reyes <dana@example.org>"
    assert message["List-Id"] == "Harbor Notes <notes.example.org>"
    assert message["List-Unsubscribe"] == f"<{UNSUB}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    names = [name.lower() for name in message]
    assert len(names) == len(set(names))


def test_no_mailto_unsubscribe() -> None:
    """Unsubscribing is the https one-click link only: no message offers a mailto: that
    would land in a mailbox nobody reads, in its headers or its API headers."""
    template = make_template()
    raw = template.message_bytes(reader(), NOW)
    assert b"mailto:" not in raw
    assert parse(raw).get_all("List-Unsubscribe") == [f"<{UNSUB}>"]
    assert "mailto" not in template.headers(reader())["List-Unsubscribe"]


def test_crlf_in_name_cannot_add_a_header() -> None:
    """A name carrying CR LF and a Bcc line stays inside the To header."""
    raw = make_template().message_bytes(reader(name="Eve\r\nBcc: evil@x.example"), NOW)
    message = parse(raw)
    assert message["Bcc"] is None
    assert b"\r\nBcc:" not in raw.split(b"\r\n\r\n", 1)[0]
    (address,) = message["To"].addresses
    assert (address.display_name, address.addr_spec) == ("Eve Bcc: evil@x.example", "reader@example.com")


def test_crlf_in_non_ascii_name_cannot_add_a_header() -> None:
    """Line breaks are removed before encoding, so even encoded words carry none."""
    message = parse(make_template().message_bytes(reader(name="Zoë\nBcc: evil@x.example"), NOW))
    assert message["Bcc"] is None
    assert "\n" not in str(message["To"])


def test_crlf_in_address_is_refused() -> None:
    """An address with a line break is never written into a header."""
    with pytest.raises(SubscriberError, match="cannot be used"):
        make_template().message_bytes(reader(email="a@example.com\r\nBcc: evil@x.example"), NOW)


def test_crlf_in_title_and_config_stays_in_one_header() -> None:
    """Line breaks in a title or the publication name never start a header (config.toml
    refuses such a name; this holds even for a Config built another way)."""
    plain = make_config()
    config = replace(
        plain, values=MappingProxyType({**plain.values, "publication.title": "Harbor\r\nBcc: evil@x.example"})
    )
    rendered = RenderedIssue(
        key="k", subject="Hi\r\nBcc: evil@x.example", html=rendered_issue().html, text=rendered_issue().text
    )
    message = parse(MessageTemplate.from_rendered(config, rendered).message_bytes(reader(), NOW))
    assert message["Bcc"] is None
    assert message["Subject"] == "Hi Bcc: evil@x.example"
    assert message["List-Id"] == "Harbor Bcc: evil@x.example <notes.example.org>"


def test_non_ascii_subject_is_rfc2047() -> None:
    """A non-ASCII subject is encoded on the wire and decodes back to itself."""
    config = make_config()
    rendered = rendered_issue(config, title="Grüße aus dem Hafen — über Ruhe")
    raw = MessageTemplate.from_rendered(config, rendered).message_bytes(reader(), NOW)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head
    assert parse(raw)["Subject"] == "Grüße aus dem Hafen — über Ruhe"


def test_non_ascii_name_is_rfc2047() -> None:
    """A non-ASCII display name is encoded in encoded-words of at most 75 characters."""
    name = "Zoë Ça " * 12
    raw = make_template().message_bytes(reader(name=name), NOW)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert all(len(word) <= 75 for word in re.findall(r"=\?utf-8\?b\?[^?]*\?=", head))
    # email.header decodes RFC 2047 strictly (the address parser inserts spaces between words).
    to = re.search(r"^To: (.*?)\r\n(?! )", head, re.MULTILINE | re.DOTALL)
    assert to is not None
    decoded = str(make_header(decode_header(to.group(1))))
    assert decoded == f"{name.strip()} <reader@example.com>"


def test_special_characters_in_name_are_quoted() -> None:
    """A name with a comma or quote is quoted, so it cannot split into two addresses."""
    message = parse(make_template().message_bytes(reader(name='Lee, "Ann"'), NOW))
    assert message["To"].addresses[0].display_name == 'Lee, "Ann"'
    assert len(message["To"].addresses) == 1


def test_message_is_seven_bit_with_crlf_and_short_lines() -> None:
    """ASCII only, CRLF only, and no body line over 76 characters, even with long values."""
    long_url = UNSUB + "x" * 300
    raw = make_template().message_bytes(reader(unsubscribe_url=long_url, name="N" * 150), NOW)
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert long_url in bodies(parse(raw))[0]


def test_boundary_never_appears_in_the_body() -> None:
    """The boundary starts with "=_", which quoted-printable output cannot contain."""
    raw = make_template().message_bytes(reader(), NOW)
    boundary = parse(raw).get_boundary()
    assert boundary and boundary.startswith("=_")
    assert raw.count(boundary.encode()) == 4  # Content-Type, two parts, the close


def test_no_unsubscribe_url_means_no_list_unsubscribe() -> None:
    """The confirmation mail (no unsubscribe URL) carries no List-Unsubscribe headers."""
    config = make_config()
    rendered = newsletter.render_confirmation(config, "https://notes.example.org/confirm/t", NOW)
    template = MessageTemplate.from_rendered(config, rendered)
    message = parse(template.message_bytes(reader(unsubscribe_url=""), NOW))
    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None
    assert "reader@example.com" in bodies(message)[0]


def test_headers_for_api_providers() -> None:
    """headers() gives the list headers and Message-ID API providers pass on."""
    headers = make_template().headers(reader())
    assert headers == {
        "List-Unsubscribe": f"<{UNSUB}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": "Harbor Notes <notes.example.org>",
        "Message-ID": "<i12.d345@example.org>",
    }


def test_template_attributes() -> None:
    """The template exposes subject, sender and reply-to for API providers."""
    template = make_template()
    assert template.subject == "Rest and repair: what a pause does"
    assert template.sender == "Dana Reyes <notes@example.org>"
    assert template.sender_address == "notes@example.org"
    assert template.reply_to == "Dana Reyes <dana@example.org>"
    assert HTML_PLACEHOLDERS.unsubscribe_url in template.html


def test_naive_date_is_refused() -> None:
    """A Date without a zone would be a lie about when the mail was sent."""
    with pytest.raises(ValueError, match="timezone-aware"):
        make_template().message_bytes(reader(), datetime(2026, 3, 1, 12, 0))


def test_malformed_message_id_is_refused() -> None:
    """A Message-ID that is not <id@domain> is refused rather than sent."""
    with pytest.raises(ValueError, match="Message-ID"):
        make_template().message_bytes(reader(message_id="<x@y>\r\nBcc: a@b"), NOW)


def test_message_id_for_is_the_rows_stored_key() -> None:
    """A ledger row's Message-ID is its stored key at the sender's domain; a key that
    could break the header is refused."""
    assert message_id_for("3f9a0c", "example.org") == "<3f9a0c@example.org>"
    for bad in ("", "a b", "a>b", "a@b", "x\r\nBcc: a@b"):
        with pytest.raises(ValueError, match="Message-ID key"):
            message_id_for(bad, "example.org")


def test_bad_from_address_names_the_key() -> None:
    """A From without an address is a config error naming [newsletter] from."""
    config = make_config(**{"newsletter.from": '"Dana Reyes"'})
    with pytest.raises(ConfigError, match=r"\[newsletter\] from"):
        MessageTemplate.from_rendered(config, rendered_issue())


def test_golden_eml() -> None:
    """A complete message matches its reviewed golden file (boundary normalised)."""
    raw = make_template().message_bytes(reader(name="Zoë Ça"), NOW)
    boundary = parse(raw).get_boundary() or ""
    normalised = raw.replace(boundary.encode(), b"BOUNDARY")
    path = GOLDEN / "issue.eml"
    if REGENERATE:
        path.write_bytes(normalised)
    assert normalised == path.read_bytes(), "issue.eml differs; PUBLISHER_REGENERATE_GOLDEN=1 rewrites it"


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh 2048-bit RSA key file and its public key as published in DNS."""
    folder = tmp_path_factory.mktemp("dkim")
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dkim_config(key: Path) -> Config:
    return make_config(
        key.parent,
        **{
            "delivery.dkim.domain": '"example.org"',
            "delivery.dkim.selector": '"news"',
            "delivery.dkim.private_key_file": f'"{key.name}"',
        },
    )


def test_dkim_signature_verifies(rsa_key: tuple[Path, bytes]) -> None:
    """A signed message verifies against the published key."""
    key, record = rsa_key
    raw = make_template(dkim_config(key)).message_bytes(reader(name="Zoë"), NOW)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news._domainkey.example.org."
        return record

    assert raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(raw, dnsfunc=dns)


def test_dkim_covers_both_list_unsubscribe_headers(rsa_key: tuple[Path, bytes]) -> None:
    """h= lists List-Unsubscribe and List-Unsubscribe-Post (RFC 8058)."""
    key, _ = rsa_key
    message = parse(make_template(dkim_config(key)).message_bytes(reader(), NOW))
    tags = dict(
        part.strip().split("=", 1) for part in str(message["DKIM-Signature"]).split(";") if "=" in part
    )
    signed = {h.strip().lower() for h in re.sub(r"\s", "", tags["h"]).split(":")}
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject", "list-id"} <= signed


def test_dkim_fails_when_tampered(rsa_key: tuple[Path, bytes]) -> None:
    """Changing the unsubscribe link after signing breaks the signature."""
    key, record = rsa_key
    raw = make_template(dkim_config(key)).message_bytes(reader(), NOW)
    forged = raw.replace(b"MTIz.abc", b"MTI0.abc", 1)
    assert forged != raw
    assert not dkim.verify(forged, dnsfunc=lambda name, timeout=5: record)


def test_dkim_missing_key_file_names_the_key(tmp_path: Path) -> None:
    """A DKIM key file that cannot be read is a config error naming the setting."""
    config = dkim_config(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"\[delivery.dkim\] private_key_file"):
        DkimSigner.from_config(config)


def test_dkim_bad_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    """A key file that is not a PEM RSA key says how to make one."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key", encoding="utf-8")
    with pytest.raises(ConfigError, match="openssl genrsa"):
        DkimSigner.from_config(dkim_config(bad))


def test_no_dkim_without_domain() -> None:
    """Without [delivery.dkim] domain nothing is signed."""
    assert DkimSigner.from_config(make_config()) is None
    assert not make_template().message_bytes(reader(), NOW).startswith(b"DKIM")


def test_dkim_selector_required(tmp_path: Path) -> None:
    """A DKIM domain without a selector is a config error."""
    config = make_config(tmp_path, **{"delivery.dkim.domain": '"example.org"'})
    with pytest.raises(ConfigError, match="selector is required"):
        DkimSigner.from_config(config)
