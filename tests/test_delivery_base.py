"""The provider registry and the helpers every provider shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from fakes.messages import publication_config, recipients

from publisher.config import PROVIDER_NAMES
from publisher.delivery import PROVIDERS, make_provider
from publisher.delivery.base import (
    AccountRefused,
    batches,
    mailbox,
    parse_retry_after,
    settle,
    split_address,
)
from publisher.delivery.maildir import MaildirProvider
from publisher.errors import ConfigError
from publisher.models import Outcome, SendResult

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)

SECRETS = {
    "PUBLISHER_POSTMARK_TOKEN": "pm",
    "PUBLISHER_SENDGRID_API_KEY": "sg",
    "PUBLISHER_MAILGUN_API_KEY": "mg",
    "PUBLISHER_RESEND_API_KEY": "re",
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_REGION": "eu-west-1",
}


def test_registry_covers_every_configurable_provider() -> None:
    """Every choice of [delivery] provider has a factory, and nothing else does."""
    assert set(PROVIDERS) == set(PROVIDER_NAMES)


def test_default_provider_is_maildir(tmp_path: Path) -> None:
    """The sample configuration sends into a Maildir beside config.toml."""
    provider = make_provider(publication_config(tmp_path))
    assert isinstance(provider, MaildirProvider)
    assert provider.path == tmp_path / "outbox"


@pytest.mark.parametrize("name", PROVIDER_NAMES)
def test_each_provider_builds_from_config(tmp_path: Path, name: str) -> None:
    """With its secrets present each provider starts and reports its name and batch size."""
    extra = '[delivery.mailgun]\ndomain = "mg.example.org"\n'
    if name == "pool":  # a pool's members are its settings
        extra += '[[delivery.pool]]\nprovider = "maildir"\n'
    provider = make_provider(publication_config(tmp_path, env=SECRETS, extra=extra), name=name)
    try:
        assert provider.name == name
        assert provider.max_batch >= 1
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("postmark", "PUBLISHER_POSTMARK_TOKEN"),
        ("sendgrid", "PUBLISHER_SENDGRID_API_KEY"),
        ("mailgun", "PUBLISHER_MAILGUN_API_KEY"),
        ("resend", "PUBLISHER_RESEND_API_KEY"),
        ("ses", "AWS_ACCESS_KEY_ID"),
        ("ses", "AWS_SECRET_ACCESS_KEY"),
        ("ses", "AWS_REGION"),
    ],
)
def test_missing_secret_names_the_variable(tmp_path: Path, name: str, variable: str) -> None:
    """A real provider refuses to start without its secret and says which one."""
    env = {k: v for k, v in SECRETS.items() if k != variable}
    config = publication_config(tmp_path, env=env, extra='[delivery.mailgun]\ndomain = "mg.x"\n')
    with pytest.raises(ConfigError, match=variable):
        make_provider(config, name=name)


def test_secret_may_come_from_a_file(tmp_path: Path) -> None:
    """NAME_FILE names a file holding the secret (Docker and systemd credentials)."""
    (tmp_path / "token").write_text("pm-from-file\n")
    env = {"PUBLISHER_POSTMARK_TOKEN_FILE": str(tmp_path / "token")}
    provider = make_provider(publication_config(tmp_path, env=env), name="postmark")
    provider.close()


def test_unknown_provider_lists_the_choices(tmp_path: Path) -> None:
    """Asking for a provider that does not exist names the ones that do."""
    with pytest.raises(ConfigError, match="maildir, smtp, postmark"):
        make_provider(publication_config(tmp_path), name="pigeon")


def test_mailgun_needs_a_domain(tmp_path: Path) -> None:
    """Mailgun without [delivery.mailgun] domain is a config error naming the key."""
    with pytest.raises(ConfigError, match=r"\[delivery.mailgun\] domain"):
        make_provider(publication_config(tmp_path, env=SECRETS), name="mailgun")


def test_smtp_login_needs_the_password(tmp_path: Path) -> None:
    """An SMTP username without PUBLISHER_SMTP_PASSWORD refuses to start."""
    config = publication_config(tmp_path, extra='[delivery.smtp]\nusername = "dana"\n')
    with pytest.raises(ConfigError, match="PUBLISHER_SMTP_PASSWORD"):
        make_provider(config, name="smtp")


def test_smtp_without_login_needs_no_password(tmp_path: Path) -> None:
    """A local relay without authentication needs no secret at all."""
    make_provider(publication_config(tmp_path), name="smtp").close()


def test_retry_after_in_seconds() -> None:
    """Retry-After as delay-seconds is taken as is."""
    assert parse_retry_after("120", NOW) == 120.0


def test_retry_after_as_http_date() -> None:
    """Retry-After as an HTTP date is the time left until then."""
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, NOW) == 90.0


def test_retry_after_in_the_past_or_garbled() -> None:
    """A date already past means now; an unreadable value means no hint."""
    earlier = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(earlier, NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_batches_keep_order_and_size() -> None:
    """Chunks are consecutive and at most `size` long."""
    readers = recipients(5)
    chunks = list(batches(readers, 2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [r for c in chunks for r in c] == readers


def test_unique_batches_never_repeat_an_address() -> None:
    """With unique=True an address seen in a chunk starts the next chunk."""
    one, two = recipients(2)
    again = type(one)(9, one.email.upper(), "", "", "<x@example.org>")
    chunks = list(batches([one, two, again], 10, unique=True))
    assert [[r.email for r in c] for c in chunks] == [[one.email, two.email], [again.email]]


def test_mailbox_keeps_header_injection_out() -> None:
    """A display name with CR/LF becomes one line, quoted where needed."""
    formatted = mailbox("Ann\r\nBcc: x@evil.test", "ann@example.net")
    assert formatted == '"Ann Bcc: x@evil.test" <ann@example.net>'
    assert mailbox("", "ann@example.net") == "ann@example.net"


def test_split_address_decodes_encoded_words() -> None:
    """An RFC 2047 From value yields the readable name and the bare address."""
    assert split_address("=?utf-8?q?Ren=C3=A9e?= <renee@example.org>") == (
        "Renée",
        "renee@example.org",
    )


def test_settle_raises_when_nothing_was_accepted() -> None:
    """An account refusal before any message went out stops the whole call."""
    readers = recipients(2)
    with pytest.raises(ConfigError, match="check the token"):
        settle([], readers, AccountRefused("check the token"))


def test_settle_keeps_accepted_results() -> None:
    """After some messages were accepted, a refusal turns the rest into retries."""
    first, second = recipients(2)
    done = [SendResult(first.delivery_id, first.email, Outcome.SENT)]
    results = settle(done, [second], AccountRefused("check the token"))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY]
