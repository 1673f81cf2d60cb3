"""The maildir provider: real .eml files in a real Maildir."""

from __future__ import annotations

import email.parser
import email.policy
import mailbox
import os
import re
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes.messages import publication_config, recipients, sample_template

from publisher.delivery.maildir import MaildirProvider
from publisher.errors import ConfigError
from publisher.models import Outcome

NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_each_message_is_an_eml_file_in_new(tmp_path: Path) -> None:
    """One file per recipient lands in new/, named .eml, and parses as the message."""
    config = publication_config(tmp_path)
    provider = MaildirProvider(tmp_path / "outbox")
    readers = recipients(3)
    results = provider.send(sample_template(config), readers, now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 3 and all(f.suffix == ".eml" for f in files)
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(files[0].read_bytes())
    assert parsed["To"] == "Reader 0 <reader0@example.net>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert not list((tmp_path / "outbox" / "tmp").iterdir())


def test_stdlib_mailbox_reads_the_outbox(tmp_path: Path) -> None:
    """Python's own Maildir reader sees every message with its Message-ID."""
    provider = MaildirProvider(tmp_path / "outbox")
    readers = recipients(2)
    provider.send(sample_template(publication_config(tmp_path)), readers, now=NOW)
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    assert sorted(m["Message-ID"] for m in box) == sorted(r.message_id for r in readers)


def test_results_name_the_file(tmp_path: Path) -> None:
    """provider_id is the file name, so `status` can point at the copy."""
    provider = MaildirProvider(tmp_path / "outbox")
    (result,) = provider.send(sample_template(publication_config(tmp_path)), recipients(1), now=NOW)
    assert (tmp_path / "outbox" / "new" / result.provider_id).is_file()
    assert result.delivery_id == 100


def test_sending_a_row_again_adds_a_copy(tmp_path: Path) -> None:
    """The same message sent twice (a retry after a timeout) is two files, as it would be
    two mails in an inbox: nothing is replaced."""
    provider = MaildirProvider(tmp_path / "outbox")
    template = sample_template(publication_config(tmp_path))
    readers = recipients(1)
    first = provider.send(template, readers, now=NOW)
    second = provider.send(template, readers, now=NOW)
    assert first[0].provider_id != second[0].provider_id
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 2


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    """Two databases sending into one outbox (or a rebuilt one) with the same Message-ID:
    the first reader's file stays as it was, the second gets a file of its own."""
    provider = MaildirProvider(tmp_path / "outbox")
    template = sample_template(publication_config(tmp_path))
    first, second = recipients(2)
    second = replace(second, message_id=first.message_id)
    (kept,) = provider.send(template, [first], now=NOW)
    before = (tmp_path / "outbox" / "new" / kept.provider_id).read_bytes()
    provider.send(template, [second], now=NOW)
    files = list((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 2
    assert (tmp_path / "outbox" / "new" / kept.provider_id).read_bytes() == before
    assert sorted(parsed(f)["To"] for f in files) == sorted([_to(first), _to(second)])


def test_a_name_already_taken_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the unique name is taken all the same (a clock set back), the file there is
    kept and the message is written under the next name."""
    provider = MaildirProvider(tmp_path / "outbox")
    names = iter(["taken.eml", "taken.eml", "free.eml"])
    monkeypatch.setattr(MaildirProvider, "_unique_name", staticmethod(lambda: next(names)))
    (tmp_path / "outbox" / "new" / "taken.eml").write_bytes(b"someone else's mail")
    (result,) = provider.send(sample_template(publication_config(tmp_path)), recipients(1), now=NOW)
    assert result.provider_id == "free.eml"
    assert (tmp_path / "outbox" / "new" / "taken.eml").read_bytes() == b"someone else's mail"
    assert not list((tmp_path / "outbox" / "tmp").iterdir())


def test_names_follow_the_maildir_recipe(tmp_path: Path) -> None:
    """Names are unique by Maildir's recipe (time, process, counter, host) and end .eml;
    the files are private to their owner."""
    provider = MaildirProvider(tmp_path / "outbox")
    results = provider.send(sample_template(publication_config(tmp_path)), recipients(3), now=NOW)
    names = [r.provider_id for r in results]
    assert len(set(names)) == 3
    assert all(re.fullmatch(rf"\d+\.M\d+P{os.getpid()}Q\d+\.[^/]+\.eml", n) for n in names)
    assert all(
        stat.S_IMODE((tmp_path / "outbox" / "new" / n).stat().st_mode) == 0o600 for n in names
    )


def parsed(path: Path) -> email.message.EmailMessage:
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())  # type: ignore[return-value]


def _to(recipient: object) -> str:
    return f"{recipient.name} <{recipient.email}>"  # type: ignore[attr-defined]


def test_unusable_recipient_fails_alone(tmp_path: Path) -> None:
    """A recipient whose address cannot be a header fails; the others are written."""
    provider = MaildirProvider(tmp_path / "outbox")
    good, bad = recipients(2)
    bad = replace(bad, email="not an address")
    results = provider.send(sample_template(publication_config(tmp_path)), [good, bad], now=NOW)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED]
    assert "cannot build" in results[1].detail


def test_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    """A path that cannot become a Maildir is reported with the key to change."""
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"\[delivery.maildir\] path"):
        MaildirProvider(tmp_path / "file" / "outbox")


def test_write_failure_is_temporary(tmp_path: Path) -> None:
    """A disk that refuses the write leaves the message to be retried."""
    provider = MaildirProvider(tmp_path / "outbox")
    (tmp_path / "outbox" / "tmp").rmdir()
    (result,) = provider.send(sample_template(publication_config(tmp_path)), recipients(1), now=NOW)
    assert result.outcome is Outcome.RETRY
    assert "cannot write" in result.detail
