"""DKIM made with OpenSSL: every copy verifies with dkimpy and with Perl's Mail::DKIM."""

from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from test_mime import MANAGE, UNSUB, make_template, reader
from test_newsletter import make_config

from publisher.config import Config
from publisher.errors import ConfigError
from publisher.mail.dkim_signing import DkimSigner, relaxed_lines
from publisher.mail.mime import HTML_PLACEHOLDERS, TEXT_PLACEHOLDERS, MessageTemplate
from publisher.models import RenderedIssue

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PERL_VERIFIER = Path(__file__).with_name("mail_dkim_verify.pl")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """An RSA and an Ed25519 key in one folder, and their DNS records by name."""
    folder = tmp_path_factory.mktemp("dkim")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "dkim.pem").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    ed_key = ed25519.Ed25519PrivateKey.generate()
    (folder / "ed.pem").write_bytes(
        ed_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    raw_seed = ed_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    (folder / "ed.key").write_bytes(base64.b64encode(raw_seed) + b"\n")
    rsa_public = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ed_public = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    records = {
        "news._domainkey.example.org": b"v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_public),
        "ed._domainkey.example.org": b"v=DKIM1; k=ed25519; p=" + base64.b64encode(ed_public),
    }
    return folder, records


def signed_config(folder: Path, *, ed25519_file: str = "") -> Config:
    values = {
        "delivery.dkim.domain": '"example.org"',
        "delivery.dkim.selector": '"news"',
        "delivery.dkim.private_key_file": '"dkim.pem"',
    }
    if ed25519_file:
        values["delivery.dkim.ed25519_selector"] = '"ed"'
        values["delivery.dkim.ed25519_key_file"] = f'"{ed25519_file}"'
    return make_config(folder, **values)


def dkimpy_verifies(raw: bytes, records: dict[str, bytes], index: int = 0) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode("ascii").rstrip("."), b"")

    return bool(dkim.DKIM(raw).verify(idx=index, dnsfunc=dns))


def perl_verdict(raw: bytes, records: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
    args = [f"{name}={value.decode('ascii')}" for name, value in records.items()]
    return subprocess.run(
        ["perl", str(PERL_VERIFIER), *args], input=raw.decode("utf-8"), capture_output=True, text=True,
        check=False,
    )


needs_perl = pytest.mark.skipif(
    shutil.which("perl") is None
    or subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e1"], capture_output=True, check=False).returncode,
    reason="Perl's Mail::DKIM (Debian: libmail-dkim-perl) is not installed",
)


READERS = [
    reader(),
    reader(name="Zoë Ça", email="zoe@example.net", delivery_id=7),
    reader(name="  O'Brien,   Pat  ", unsubscribe_url=UNSUB + "x" * 300),
    reader(manage_url=MANAGE + "é-y" * 100),
    reader(name="", unsubscribe_url="", manage_url=""),  # mail that is not a newsletter: no List-Unsubscribe
]


@pytest.mark.parametrize(
    "recipient", READERS, ids=["plain", "non-ascii", "long-url", "long-manage-url", "no-list-headers"]
)
def test_every_copy_verifies_with_dkimpy(keys: tuple[Path, dict[str, bytes]], recipient: object) -> None:
    """Copies spliced for different readers each carry a signature dkimpy accepts."""
    folder, records = keys
    raw = make_template(signed_config(folder)).message_bytes(recipient, NOW)  # type: ignore[arg-type]
    assert raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert dkimpy_verifies(raw, records)


@needs_perl
@pytest.mark.parametrize("recipient", READERS[1:3], ids=["non-ascii", "long-url"])
def test_every_copy_verifies_with_mail_dkim(keys: tuple[Path, dict[str, bytes]], recipient: object) -> None:
    """A second, independent verifier (Perl's Mail::DKIM) passes the RSA signature.

    (Debian 12's Mail::DKIM predates Ed25519; dkimpy checks that one above.)
    """
    folder, records = keys
    template = make_template(signed_config(folder))
    verdict = perl_verdict(template.message_bytes(recipient, NOW), records)  # type: ignore[arg-type]
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert verdict.stdout.split()[:3] == ["pass", "rsa-sha256", "news"]


@needs_perl
def test_mail_dkim_refuses_a_changed_copy(keys: tuple[Path, dict[str, bytes]]) -> None:
    """The second verifier is no rubber stamp: one changed byte of the body fails it."""
    folder, records = keys
    raw = make_template(signed_config(folder)).message_bytes(reader(), NOW)
    verdict = perl_verdict(raw.replace(b"MTIz.abc", b"MTI0.abc", 1), records)
    assert verdict.returncode == 1
    assert verdict.stdout.startswith("fail")


def test_dual_signatures_rsa_and_ed25519(keys: tuple[Path, dict[str, bytes]]) -> None:
    """With an Ed25519 key configured, each copy carries an RSA and an Ed25519 signature."""
    folder, records = keys
    raw = make_template(signed_config(folder, ed25519_file="ed.pem")).message_bytes(reader(), NOW)
    assert raw.count(b"DKIM-Signature:") == 2
    assert b"a=ed25519-sha256" in raw
    assert dkimpy_verifies(raw, records, 0)
    assert dkimpy_verifies(raw, records, 1)


def test_ed25519_key_in_dkimpy_seed_form(keys: tuple[Path, dict[str, bytes]]) -> None:
    """An Ed25519 key as dkimpy's dknewkey writes it (a base64 seed) is accepted too."""
    folder, records = keys
    raw = make_template(signed_config(folder, ed25519_file="ed.key")).message_bytes(reader(), NOW)
    assert dkimpy_verifies(raw, records, 1)


def test_timestamp_is_the_date_header(keys: tuple[Path, dict[str, bytes]]) -> None:
    """t= is the message's Date, so the same inputs sign to the same bytes."""
    folder, _ = keys
    template = make_template(signed_config(folder))
    first = template.message_bytes(reader(), NOW)
    assert f"t={int(NOW.timestamp())};".encode() in first
    assert template.message_bytes(reader(), NOW) == first


def test_whitespace_in_the_body_is_canonicalised(keys: tuple[Path, dict[str, bytes]]) -> None:
    """Runs of spaces, tabs and trailing blanks around spliced values still verify."""
    folder, records = keys
    text = f"Hello  {TEXT_PLACEHOLDERS.name}\t!   \n\n  indented\ttext  \nBye {TEXT_PLACEHOLDERS.unsubscribe_url}\n\n\n"
    html = f"<p>Hi   {HTML_PLACEHOLDERS.name}</p>  \n<a href=\"{HTML_PLACEHOLDERS.unsubscribe_url}\">x</a>\n"
    rendered = RenderedIssue(key="ws", subject="Spaces  and\ttabs", html=html, text=text)
    template = MessageTemplate.from_rendered(signed_config(folder), rendered)
    raw = template.message_bytes(reader(name="Pat  Two"), NOW)
    assert dkimpy_verifies(raw, records)


def test_relaxed_lines_matches_the_rfc() -> None:
    """Whitespace runs become one space and blanks before a line end go (RFC 6376 3.4.4)."""
    assert relaxed_lines(b"a  b\t c \t\r\n\r\n  d\r\n") == b"a b c\r\n\r\n d\r\n"
    assert relaxed_lines(b"plain line\r\n") == b"plain line\r\n"


def test_key_parsed_once_per_issue(keys: tuple[Path, dict[str, bytes]]) -> None:
    """Making copies reads no key file: the signer holds the parsed key."""
    folder, records = keys
    template = make_template(signed_config(folder))
    (folder / "dkim.pem").rename(folder / "moved.pem")
    try:
        raw = template.message_bytes(reader(), NOW)
    finally:
        (folder / "moved.pem").rename(folder / "dkim.pem")
    assert dkimpy_verifies(raw, records)


def test_ed25519_selector_without_key_file(keys: tuple[Path, dict[str, bytes]]) -> None:
    """Half of the second signature's settings is a config error naming both keys."""
    folder, _ = keys
    config = make_config(folder, **{
        "delivery.dkim.domain": '"example.org"',
        "delivery.dkim.selector": '"news"',
        "delivery.dkim.private_key_file": '"dkim.pem"',
        "delivery.dkim.ed25519_selector": '"ed"',
    })
    with pytest.raises(ConfigError, match="ed25519_selector and ed25519_key_file go together"):
        DkimSigner.from_config(config)


def test_rsa_key_given_as_the_ed25519_key(keys: tuple[Path, dict[str, bytes]]) -> None:
    """An RSA key in the Ed25519 slot says how to make an Ed25519 key."""
    folder, _ = keys
    with pytest.raises(ConfigError, match="genpkey -algorithm ed25519"):
        DkimSigner.from_config(signed_config(folder, ed25519_file="dkim.pem"))


def test_passphrase_protected_key_is_refused(tmp_path: Path) -> None:
    """A key with a passphrase cannot be used unattended: the error says so and names the file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "dkim.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ConfigError, match=r"private_key_file .*dkim\.pem.* without a passphrase"):
        DkimSigner.from_config(signed_config(tmp_path))


def test_short_rsa_key_is_refused(tmp_path: Path) -> None:
    """An RSA key shorter than receivers accept (RFC 8301) is refused before any send."""
    subprocess.run(["openssl", "genrsa", "-out", str(tmp_path / "dkim.pem"), "768"], check=True, capture_output=True)
    with pytest.raises(ConfigError, match="768-bit RSA key"):
        DkimSigner.from_config(signed_config(tmp_path))
