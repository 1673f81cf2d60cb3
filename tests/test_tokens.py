"""Signed tokens and the secret behind them."""

from __future__ import annotations

import json
import stat
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from itsdangerous import URLSafeSerializer
from itsdangerous.encoding import base64_encode

from publisher.config import Config, parse_config
from publisher.errors import ConfigError, TokenError
from publisher.mail import tokens

SECRET = "0123456789abcdef0123456789abcdef"
SENT = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


def make_config(root: Path, env: dict[str, str] | None = None, provider: str = "maildir") -> Config:
    text = (
        '[publication]\ntitle = "Harbor Notes"\nurl = "https://notes.example.org/"\n'
        '[newsletter]\nfrom = "Dana <notes@example.org>"\n'
        f'[delivery]\nprovider = "{provider}"\n'
        '[server]\npublic_url = "https://app.example.org/"\n'
    )
    return parse_config(text, root=root, env=env or {})


KEY = "5f0c9d1e2a3b4c5d6e7f8091a2b3c4d5"
OTHER_KEY = "00112233445566778899aabbccddeeff"


def legacy(purpose: str, value: object) -> str:
    """A token as links signed before link keys carried it: the bare payload."""
    return str(URLSafeSerializer(SECRET, salt=f"publisher.{purpose}").dumps(value))


def test_round_trip() -> None:
    """A token verifies to the link key it was signed for."""
    assert tokens.verify(SECRET, "unsubscribe", tokens.sign(SECRET, "unsubscribe", KEY)) == (tokens.LinkTarget(key=KEY))


COMPRESSIBLE = ("284742ca9839c528c3539479298a8687", "8813cdc134c876dd67e85b1d")
"""A link key and message key whose payload zlib makes two bytes shorter: itsdangerous's
own spelling of it is compressed ("." first)."""


def serializer_spelling(purpose: str, value: object) -> str:
    """What `URLSafeSerializer.dumps` makes, and so what links signed before carry."""
    return str(URLSafeSerializer(SECRET, salt=f"publisher.{purpose}").dumps(value))


def plain_spelling(purpose: str, value: object) -> str:
    """The serializer's token for `value` with the payload left uncompressed."""
    payload = base64_encode(json.dumps(value, separators=(",", ":")))
    return URLSafeSerializer(SECRET, salt=f"publisher.{purpose}").make_signer().sign(payload).decode()


@pytest.mark.parametrize(("key", "message_key"), [(KEY, "0a1b2c3d4e5f60718293a4b5"), COMPRESSIBLE])
def test_links_are_signed_as_the_serializer_signs_them_uncompressed(key: str, message_key: str) -> None:
    """Links are signed without a serializer per link, yet each is the serializer's token
    for the same payload, never compressed, even where zlib would make it shorter."""
    for purpose in ("unsubscribe", "manage"):
        token = tokens.sign(SECRET, purpose, key, message_key)
        assert token == plain_spelling(purpose, [key, message_key])
        assert tokens.verify(SECRET, purpose, token) == tokens.LinkTarget(key=key, message_key=message_key)
    assert tokens.sign(SECRET, "confirm", key) == legacy("confirm", key)


def test_compressed_links_from_mail_sent_before_still_verify() -> None:
    """A link older mail carries in the serializer's compressed spelling still names its
    reader and message, on both unsubscribe and manage links."""
    key, message_key = COMPRESSIBLE
    for purpose in ("unsubscribe", "manage"):
        before = serializer_spelling(purpose, [key, message_key])
        assert before.startswith(".")
        assert tokens.verify(SECRET, purpose, before) == tokens.LinkTarget(key=key, message_key=message_key)


def test_a_compressed_spelling_the_serializer_never_made_is_refused() -> None:
    """A compressed payload under a good signature verifies only where the serializer
    would have compressed it: otherwise it is a second spelling, and refused."""
    payload = json.dumps([KEY, "0a1b2c3d4e5f60718293a4b5"], separators=(",", ":")).encode()
    body = b"." + base64_encode(zlib.compress(payload))
    token = URLSafeSerializer(SECRET, salt="publisher.unsubscribe").make_signer().sign(body).decode()
    with pytest.raises(TokenError):
        tokens.verify(SECRET, "unsubscribe", token)


def test_a_confirmation_link_from_before_still_verifies() -> None:
    """A confirmation link signed by the serializer (before links were left uncompressed) confirms."""
    micros = (SENT - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert tokens.verify_confirm(SECRET, serializer_spelling("confirm", [KEY, micros])) == (KEY, SENT)


def test_token_does_not_carry_a_row_id() -> None:
    """Nothing in a token counts subscribers: its payload is the random key alone."""
    token = tokens.sign(SECRET, "unsubscribe", KEY)
    payload = URLSafeSerializer(SECRET, salt="publisher.unsubscribe").loads(token)
    assert payload == KEY


def test_only_link_keys_are_signed() -> None:
    """A row id (or anything but a 32-digit hex key) cannot be signed by mistake."""
    for bad in (42, "42", KEY.upper(), KEY[:-1]):
        with pytest.raises(ValueError, match="link key"):
            tokens.sign(SECRET, "unsubscribe", bad)  # type: ignore[arg-type]


def test_token_is_url_safe() -> None:
    """Tokens go into URL paths as they are."""
    token = tokens.sign_confirm(SECRET, KEY, SENT)
    assert token.replace("-", "").replace("_", "").replace(".", "").isalnum()


def test_tampered_token_is_refused() -> None:
    """A payload moved under another signature, or an altered signature, is invalid."""
    token = tokens.sign(SECRET, "unsubscribe", KEY)
    other = tokens.sign(SECRET, "unsubscribe", OTHER_KEY)
    forged = other.split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(TokenError):
        tokens.verify(SECRET, "unsubscribe", forged)
    with pytest.raises(TokenError):
        # The middle of the signature: a base64 tail character may carry only padding bits.
        middle = len(token) - 8
        swapped = "A" if token[middle] != "A" else "B"
        tokens.verify(SECRET, "unsubscribe", token[:middle] + swapped + token[middle + 1 :])


def test_wrong_purpose_is_refused() -> None:
    """A confirmation token cannot unsubscribe anyone, and the other way round."""
    with pytest.raises(TokenError):
        tokens.verify(SECRET, "unsubscribe", tokens.sign_confirm(SECRET, KEY, SENT))
    with pytest.raises(TokenError):
        tokens.verify_confirm(SECRET, tokens.sign(SECRET, "unsubscribe", KEY))


def test_wrong_secret_is_refused() -> None:
    """A token signed with another secret is invalid."""
    with pytest.raises(TokenError):
        tokens.verify(SECRET, "unsubscribe", tokens.sign("another secret", "unsubscribe", KEY))


def test_garbage_gets_the_same_message() -> None:
    """Malformed and forged tokens are refused with one and the same message."""
    messages = set()
    for bad in ("", "abc", "x.y", tokens.sign(SECRET, "confirm", KEY), legacy("unsubscribe", "nokey")):
        with pytest.raises(TokenError) as info:
            tokens.verify(SECRET, "unsubscribe", bad)
        messages.add(str(info.value))
    assert len(messages) == 1


def test_only_the_exact_spelling_verifies() -> None:
    """Strings that decode to the same bytes as a token (padding, spare bits of the last
    character, characters base64 skips) are refused: a token has one spelling."""
    token = tokens.sign(SECRET, "unsubscribe", KEY)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    spare_bits = [token[:-1] + alphabet[last ^ flip] for flip in (1, 2, 3)]
    for variant in (token + "=", token + "==", token + "!", token + " ", *spare_bits):
        with pytest.raises(TokenError):
            tokens.verify(SECRET, "unsubscribe", variant)


def test_older_unsubscribe_links_name_a_legacy_id() -> None:
    """An id-only unsubscribe token is read as a legacy id (honoured only for rows the
    upgrade marked); one no database column can hold is invalid, not a crash later."""
    assert tokens.verify(SECRET, "unsubscribe", legacy("unsubscribe", 42)) == tokens.LinkTarget(legacy_id=42)
    for bad in (2**63, -1, True):
        with pytest.raises(TokenError):
            tokens.verify(SECRET, "unsubscribe", legacy("unsubscribe", bad))


def test_older_confirm_links_are_refused() -> None:
    """An id-only confirmation token (old format) confirms nobody: subscribing again is easy."""
    with pytest.raises(TokenError):
        tokens.verify_confirm(SECRET, legacy("confirm", [9, 0]))
    with pytest.raises(TokenError):
        tokens.verify(SECRET, "confirm", legacy("confirm", 9))


def test_overlong_token_is_refused() -> None:
    """A string far longer than any token is refused before it is decoded."""
    with pytest.raises(TokenError):
        tokens.verify(SECRET, "unsubscribe", "A" * 10_000)


def test_confirm_token_carries_its_sending_time() -> None:
    """A confirmation token names the key and, to the microsecond, when it was sent."""
    token = tokens.sign_confirm(SECRET, KEY, SENT)
    assert tokens.verify_confirm(SECRET, token) == (KEY, SENT)


def test_confirm_token_needs_the_sending_time() -> None:
    """A confirm-purpose token without a sending time, or an unsubscribe token, does not
    confirm anyone."""
    for token in (
        tokens.sign(SECRET, "confirm", KEY),
        tokens.sign(SECRET, "unsubscribe", KEY),
        "garbage",
    ):
        with pytest.raises(TokenError, match="not valid"):
            tokens.verify_confirm(SECRET, token)


def test_unknown_purpose_is_a_programming_error() -> None:
    """Only the known purposes can be signed."""
    with pytest.raises(ValueError, match="purpose"):
        tokens.sign(SECRET, "login", KEY)


def test_urls_use_the_public_url(tmp_path: Path) -> None:
    """Unsubscribe and confirm links point into the app at server.public_url."""
    config = make_config(tmp_path)
    unsubscribe = tokens.unsubscribe_url(config, SECRET, KEY)
    confirm = tokens.confirm_url(config, SECRET, KEY, SENT)
    assert unsubscribe.startswith("https://app.example.org/unsubscribe/")
    assert confirm.startswith("https://app.example.org/confirm/")
    assert tokens.verify(SECRET, "unsubscribe", unsubscribe.rsplit("/", 1)[1]).key == KEY
    assert tokens.verify_confirm(SECRET, confirm.rsplit("/", 1)[1]) == (KEY, SENT)


def test_secret_from_environment(tmp_path: Path) -> None:
    """PUBLISHER_SECRET is used when set, and no file is written."""
    config = make_config(tmp_path, {"PUBLISHER_SECRET": SECRET}, provider="smtp")
    assert tokens.resolve_secret(config, real_provider=True) == SECRET
    assert not (tmp_path / tokens.SECRET_FILE_NAME).exists()


def test_secret_from_file_named_by_environment(tmp_path: Path) -> None:
    """PUBLISHER_SECRET_FILE names a file holding the secret."""
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n", encoding="utf-8")
    config = make_config(tmp_path, {"PUBLISHER_SECRET_FILE": str(path)}, provider="smtp")
    assert tokens.resolve_secret(config, real_provider=True) == SECRET


def test_short_secret_is_refused_with_how_to_make_one(tmp_path: Path) -> None:
    """A secret under 32 bytes is refused, for the demo too, with the command that makes a good one."""
    for provider, real in (("smtp", True), ("maildir", False)):
        config = make_config(tmp_path, {"PUBLISHER_SECRET": "hunter2"}, provider=provider)
        with pytest.raises(ConfigError, match=r"(?s)7 bytes long; it must be at least 32.*openssl rand -hex 32"):
            tokens.resolve_secret(config, real_provider=real)
    assert tokens.resolve_secret(make_config(tmp_path, {"PUBLISHER_SECRET": "x" * 32}), real_provider=True)


def test_real_provider_refuses_without_secret(tmp_path: Path) -> None:
    """A real provider never falls back to a generated secret; the error says how to set one."""
    config = make_config(tmp_path, provider="smtp")
    with pytest.raises(ConfigError, match=r"export PUBLISHER_SECRET=\$\(openssl rand -hex 32\)"):
        tokens.resolve_secret(config, real_provider=True)
    assert not (tmp_path / tokens.SECRET_FILE_NAME).exists()


def test_demo_secret_is_generated_private_and_stable(tmp_path: Path) -> None:
    """The maildir demo gets a generated secret in a 0600 file, the same on every call."""
    config = make_config(tmp_path)
    first = tokens.resolve_secret(config, real_provider=False)
    path = tmp_path / tokens.SECRET_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert tokens.resolve_secret(config, real_provider=False) == first
    assert [p.name for p in tmp_path.iterdir()] == [tokens.SECRET_FILE_NAME]


def test_empty_demo_secret_file_is_reported(tmp_path: Path) -> None:
    """An emptied secret file is an error, never an empty signing key."""
    (tmp_path / tokens.SECRET_FILE_NAME).write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="is empty"):
        tokens.resolve_secret(make_config(tmp_path), real_provider=False)


def test_a_copys_two_links_made_together_are_those_made_one_by_one(tmp_path: Path) -> None:
    """The unsubscribe and manage links of one copy, signed together, are the very links
    `unsubscribe_url` and `manage_url` make, with and without the message."""
    config = make_config(tmp_path)
    for message_key in ("0a1b2c3d4e5f60718293a4b5", None):
        assert tokens.reader_urls(config.public_url, SECRET, KEY, message_key) == (
            tokens.unsubscribe_url(config, SECRET, KEY, message_key),
            tokens.manage_url(config, SECRET, KEY, message_key),
        )
