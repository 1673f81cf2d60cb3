"""The settings an owner changes in the desk: shown, checked, written back, audited.

`settings_view` reads config.toml as it is on disk now (not as the server loaded it) and
returns what the Settings page shows: each field's value, the topics offered and retired,
which provider secrets are set and where, the digest in words with its next three times,
the file's fingerprint and the audit log. `save_settings` takes the page's form:

1. under a lock beside config.toml, so that two saves never interleave, the file on disk
   must still be the one the form was made from: if it was edited since (by hand, or by a
   save posted at the same moment), nothing is written and Conflict says to reload;
2. the form's values are written into the file's text (`settings_text.edit_text`, which
   keeps comments and order) and the text is parsed with `parse_config`, the one set of
   rules: every problem is found at once and raised as one ConfigError (each names its
   key, so the page shows it beside its field);
3. when the provider, its settings or its secret change, the provider is asked whether it
   takes the credentials, without sending (`credentials.check`): a refusal saves nothing,
   so the old key keeps working;
4. the secrets file (`config.SECRETS_FILE`, 0600; secrets never go into config.toml) and
   config.toml are each replaced in one step: a temporary file in the same folder, synced,
   then renamed over the old one, its mode kept. A disk that fills up midway leaves the
   old file whole;
5. one audit row per key changed, a secret's values masked ("(set)", "(changed)",
   "(removed)"); a renamed topic is renamed in every reader's choice of topics. A retired
   topic stays in the choices of the readers who made it (their history), and is no longer
   offered: it leaves `subscribe.public_tags` for `subscribe.retired_tags`.
   A save that changes the digest says when it now goes out, with its next three times.
   A schedule line written by hand that the form's choice means too ("00 08 * * MON"
   for every Monday at 08:00) is not a change: it stays as written.

A running `publisher serve` notices the new file and takes it up (see schedule.daemon).
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import Engine

from publisher.config import SECRETS_FILE, Config, parse_config, secrets_beside
from publisher.errors import ConfigError, Conflict, PublisherError
from publisher.mail import preflight
from publisher.mail.dkim_signing import DkimSigner
from publisher.mail.mime import split_mailbox
from publisher.mail.preflight import DnsRecord
from publisher.numbers import plain_int
from publisher.schedule.timing import parse_window
from publisher.services import credentials, scheduling
from publisher.services.settings_text import (
    FIELDS,
    SECRET_KEYS,
    backup_choice,
    cron_in_words,
    digest_choice,
    edit_text,
    fingerprint,
    next_fire_times,
    secrets_text,
    times_in_words,
)
from publisher.store import settings_audit
from publisher.store.preferences import rename_topic
from publisher.store.settings_audit import SettingsChange

__all__ = [
    "CHANGED_ON_DISK",
    "Digest",
    "Saved",
    "SecretState",
    "SettingsView",
    "save_settings",
    "settings_view",
]

DKIM_KEYS = ("delivery.dkim.domain", "delivery.dkim.selector", "delivery.dkim.private_key_file")
CHANGED_ON_DISK = "config.toml was changed on disk since you opened this page; reload to see it"
LOCK_FILE = ".publisher-settings.lock"
MAX_FIELD = 1000
"""Characters a settings field may hold (a postal address is the longest there is)."""


@dataclass(frozen=True, slots=True)
class SecretState:
    name: str
    label: str
    provider: str
    where: str
    """"settings" (set on this page), "environment" (set where the server starts) or ""."""


@dataclass(frozen=True, slots=True)
class Digest:
    words: str
    next_times: tuple[datetime, ...]

    @property
    def next_in_words(self) -> str:
        """"Monday 14 December 2026 at 08:00, ... and ...": the next times as the page says them."""
        return times_in_words(self.next_times)


@dataclass(frozen=True, slots=True)
class SettingsView:
    fingerprint: str
    values: Mapping[str, str]
    public_tags: tuple[str, ...]
    retired_tags: tuple[str, ...]
    secrets: tuple[SecretState, ...]
    digest: Digest | None
    changes: tuple[SettingsChange, ...]
    dkim_records: tuple[DnsRecord, ...] = ()
    """The DKIM TXT records to publish for the configured keys (none without DKIM)."""
    dkim_problem: str = ""


@dataclass(frozen=True, slots=True)
class Saved:
    changes: tuple[SettingsChange, ...]
    notices: tuple[str, ...]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from exc


def _parse(text: str, path: Path, env: Mapping[str, str], secrets: Mapping[str, str]) -> Config:
    return parse_config(text, root=path.resolve().parent, origin=path.name, env={**secrets, **env})


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _form_values(config: Config) -> dict[str, str]:
    name, address = split_mailbox(str(config["newsletter.from"]))
    values: dict[str, str] = {}
    for field in FIELDS:
        value = config[field.key]
        if field.kind == "list":
            value = ", ".join(value)
        values[field.name] = "" if value is None else str(value)
    values["from_name"], values["from_address"] = name, address
    if values["policy"] == "draft":
        values["policy"] = "wait"
    return values


def _digest(cron: str, zone: str, now: datetime) -> Digest | None:
    """The digest line in words with its next three times; a line that never fires says so."""
    if not cron:
        return None
    try:
        return Digest(cron_in_words(cron, zone), tuple(next_fire_times(cron, zone, now)))
    except ConfigError as exc:
        return Digest(str(exc), ())


def _digest_notice(config: Config, engine: Engine, now: datetime) -> str:
    """What a save that changed the digest says: when it goes now, its next times, and what
    the next one gathers. A digest turned on gathers every article on the site that no
    digest carried yet, those already mailed one by one too, and who it goes to
    (`scheduling.digest_skip_had`): said before it goes, it is not a surprise (the next time may be minutes away)."""
    digest = _digest(str(config["schedule.digest"]), str(config["publication.timezone"]), now)
    if digest is None:
        return "No digest goes out any more."
    said = f"The digest goes out {digest.words}: next on {digest.next_in_words}."
    try:
        coming = scheduling.next_digest(config, engine, now=now)
    except PublisherError:
        return said
    if coming is None:
        return said
    if not coming.titles:
        return f"{said} Nothing is waiting for it yet: it gathers the articles published from now on."
    titles = ", ".join(f"\u201c{t}\u201d" for t in coming.titles[:3])
    more = f" and {len(coming.titles) - 3:,} more" if len(coming.titles) > 3 else ""
    count = f"{len(coming.titles):,} article{'' if len(coming.titles) == 1 else 's'}"
    return (
        f"{said} The next one, {coming.in_words}, gathers {count} on the site that no digest carried yet "
        f"({titles}{more}) and goes to every active reader but those who had each of them already."
    )


def settings_view(
    config_path: Path, *, engine: Engine, now: datetime, env: Mapping[str, str] | None = None
) -> SettingsView:
    """What the Settings page shows, from config.toml as it is on disk now."""
    environment = _env(env)
    text = _read(config_path)
    secrets = secrets_beside(config_path)
    config = _parse(text, config_path, environment, secrets)
    digest = _digest(str(config["schedule.digest"]), str(config["publication.timezone"]), now)
    records: tuple[DnsRecord, ...] = ()
    dkim_problem = ""
    try:
        signer = DkimSigner.from_config(config)
    except PublisherError as exc:
        dkim_problem = str(exc)
    else:
        if signer is not None:
            records = tuple(r for r in preflight.dns_records(config, signer) if r.kind == "DKIM")
    return SettingsView(
        dkim_records=records,
        dkim_problem=dkim_problem,
        fingerprint=fingerprint(text),
        values=_form_values(config),
        public_tags=tuple(config["subscribe.public_tags"]),
        retired_tags=tuple(config["subscribe.retired_tags"]),
        secrets=tuple(
            SecretState(name, label, provider,
                        "environment" if environment.get(name) else "settings" if secrets.get(name) else "")
            for name, label, provider in SECRET_KEYS
        ),
        digest=digest,
        changes=tuple(settings_audit.recent(engine)),
    )


@contextlib.contextmanager
def _locked(config_path: Path) -> Iterator[None]:
    """One save at a time, across threads and processes (flock on a file beside config.toml)."""
    lock_path = config_path.parent / LOCK_FILE
    handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def write_atomically(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Replace `path` with `text` in one step (the file's own mode kept); on any failure the
    old file is left as it was and ConfigError says why."""
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(path.stat().st_mode)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        temporary.chmod(mode)
        temporary.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        full = " (the disk is full)" if exc.errno == errno.ENOSPC else ""
        raise ConfigError(
            f"{path.name} could not be written{full}: {exc.strerror or exc}. Nothing was changed: "
            "the old settings stay. Free some space or fix the folder's permissions, then save again."
        ) from exc
    with contextlib.suppress(OSError):
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _zone(value: str) -> str:
    """A zone as written, or the one zone a city names ("London" is Europe/London)."""
    try:
        ZoneInfo(value)
        return value
    except (ZoneInfoNotFoundError, ValueError):
        pass
    city = "/" + "_".join(value.split()).lower()
    found = [zone for zone in available_timezones() if zone.lower().endswith(city)]
    return found[0] if len(found) == 1 else value


def _zone_hint(value: str) -> str:
    guess = difflib.get_close_matches(value, sorted(available_timezones()), n=1, cutoff=0.6)
    return f' Did you mean "{guess[0]}"?' if guess else ""


def _looks_like_address(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(at and local and "." in domain and not any(ch.isspace() for ch in value))


def _site_address(value: str) -> bool:
    """An http(s) address, or a path the site serves; not a file on the author's computer
    (C:\\..., file:) nor any other kind of address (javascript:, data:)."""
    return "\\" not in value and urlsplit(value).scheme in ("", "http", "https")


def _looks_like_reply_to(value: str) -> bool:
    """An address, alone or with a display name ("Dana Reyes <dana@example.org>"), on one line."""
    if "\r" in value or "\n" in value:
        return False
    name, address = parseaddr(value)
    with_name = bool(name) and value.endswith(f"<{address}>")
    return bool(address) and _looks_like_address(address) and (with_name or address == value)


def _topics(form: Mapping[str, str], config: Config) -> tuple[dict[str, Any], list[tuple[str, str]], list[str]]:
    """The topics part of the form: (new values, renames, problems)."""
    public: list[str] = []
    retired = list(config["subscribe.retired_tags"])
    renames: list[tuple[str, str]] = []
    problems: list[str] = []

    def clean(text: str) -> str:
        return " ".join(text.split()).lower()

    index = 0
    while f"topic-was-{index}" in form:
        was = form[f"topic-was-{index}"]
        now_named = clean(form.get(f"topic-{index}", was))
        if form.get(f"retire-{index}"):
            if was not in retired:
                retired.append(was)
        elif now_named:
            if now_named != was:
                renames.append((was, now_named))
            public.append(now_named)
        index += 1
    for name in [form[k] for k in form if k.startswith("restore-")]:
        if name in retired:
            retired.remove(name)
            public.append(name)
    added = clean(form.get("new_topic", ""))
    if added:
        public.append(added)
    for name in public:
        if len(name) > 100:
            problems.append(f"[subscribe] public_tags: the topic {name[:40]!r}... is longer than 100 characters")
        if public.count(name) > 1:
            problems.append(f"[subscribe] public_tags: {name!r} is offered twice; give each topic its own name")
            break
    retired = [name for name in retired if name not in public]
    return {"subscribe.public_tags": tuple(public), "subscribe.retired_tags": tuple(retired)}, renames, problems


def _from_form(
    form: Mapping[str, str], config: Config, environment: Mapping[str, str], origin: str, now: datetime,
) -> tuple[dict[str, Any], dict[str, str], list[tuple[str, str]], list[str]]:
    """(values by key, secrets by name, topic renames, problems) from the fields the form holds."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name in [n for n in form if len(form[n]) > MAX_FIELD]:
        section, _, key = next((f.key for f in FIELDS if f.name == name), "settings.field").rpartition(".")
        problems.append(f"{origin}: [{section}] {key} is longer than {MAX_FIELD:,} characters: shorten it")
    if problems:
        return values, {}, [], problems
    for field in FIELDS:
        if field.name not in form or field.key == "newsletter.from":
            continue
        value: Any = form[field.name].strip()
        if field.kind == "number":
            if plain_int(value) is None:
                section, _, name = field.key.rpartition(".")
                problems.append(f"{origin}: [{section}] {name} must be a whole number, got {value!r}")
                continue
            value = int(value)
        elif field.kind == "url" and value and "://" not in value:
            value = "https://" + value
        elif field.kind == "list":
            value = [item for item in value.replace(",", " ").split() if item]
        elif field.name == "timezone":
            value = _zone(value)
        elif field.name == "logo" and value and not _site_address(value):
            problems.append(
                f"{origin}: [publication] logo must be an https address or a path on the site, such as "
                f"media/logo.png (upload the picture on the Media page), got {value!r}: a file on your "
                f"computer or another kind of address shows as a broken picture in every newsletter"
            )
        elif field.name == "reply_to" and value and not _looks_like_reply_to(value):
            problems.append(
                f"{origin}: [newsletter] reply_to must be an email address such as "
                f"dana@example.org (a name may come with it: Dana Reyes <dana@example.org>), got {value!r}"
            )
        elif field.name in ("digest", "backup_schedule") and value:
            key, empty = ("[backup] schedule", "no automatic backups") if field.name == "backup_schedule" else (
                "[schedule] digest", "no digest")
            try:
                next_fire_times(
                    value, str(values.get("publication.timezone", config.tz.key)), now, key=key, empty=empty
                )
            except ConfigError as exc:
                problems.append(f"{origin}: {exc}")
        elif field.name == "window" and value:
            try:
                parse_window(value)
            except ConfigError as exc:
                problems.append(f"{origin}: {exc}")
        values[field.key] = value
    if "from_address" in form:
        address = form["from_address"].strip()
        name = " ".join(form.get("from_name", "").split())
        if not _looks_like_address(address):
            problems.append(f"{origin}: [newsletter] from must be an email address such as dana@example.org, "
                            f"got {address!r}")
        values["newsletter.from"] = formataddr((name, address)) if name else address
    renames: list[tuple[str, str]] = []
    if "topic-was-0" in form or "new_topic" in form:
        topic_values, renames, topic_problems = _topics(form, config)
        values.update(topic_values)
        problems += [f"{origin}: {p}" for p in topic_problems]
    new_secrets: dict[str, str] = {}
    for name, _label, _provider in SECRET_KEYS:
        typed = form.get(f"secret-{name}", "").strip()
        cleared = bool(form.get(f"clear-{name}"))
        if not typed and not cleared:
            continue
        if environment.get(name):
            problems.append(f"{origin}: [secrets] {name} is set in the server's environment, which wins over this "
                            "page: change it there")
            continue
        if any(ord(ch) < 32 for ch in typed):
            problems.append(f"{origin}: [secrets] {name} must be one line")
            continue
        new_secrets[name] = "" if cleared else typed
    return values, new_secrets, renames, problems


def _shown(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value) or "(empty)"
    return str(value) if value not in ("", None) else "(empty)"


def _same_schedule(key: str, before: Any, after: Any) -> bool:
    """Whether a schedule line and the one the form made from its choice mean the same times
    ("00 08 * * MON" and "0 8 * * mon"): the line written by hand is then kept as written."""
    if key == "schedule.digest":
        was, now = digest_choice(str(before)), digest_choice(str(after))
        return was.when != "custom" and (was.when, was.day, was.monthday, was.time) == (
            now.when, now.day, now.monthday, now.time)
    if key == "backup.schedule":
        was_b, now_b = backup_choice(str(before)), backup_choice(str(after))
        return was_b.when != "custom" and (was_b.when, was_b.day, was_b.time) == (now_b.when, now_b.day, now_b.time)
    if key == "schedule.window":
        try:
            return parse_window(str(before)) == parse_window(str(after))
        except ConfigError:
            return False
    return False


def _provider_keys(config: Config) -> tuple[Any, ...]:
    provider = str(config["delivery.provider"])
    keys = [key for key in (f.key for f in FIELDS) if key.startswith(f"delivery.{provider}.")]
    return (provider, *(config[key] for key in keys),
            *(config.secret(name) for name, _, p in SECRET_KEYS if p == provider))


def save_settings(
    config_path: Path, form: Mapping[str, str], *, fingerprint_seen: str, who: str, engine: Engine,
    now: datetime, env: Mapping[str, str] | None = None,
    check: Callable[[Config], str | None] = credentials.check,
) -> Saved:
    """Write the form's settings into config.toml (and its secrets beside it); see the module."""
    environment = _env(env)
    with _locked(config_path):
        text = _read(config_path)
        if fingerprint(text) != fingerprint_seen:
            raise Conflict(CHANGED_ON_DISK)
        secrets = secrets_beside(config_path)
        before = _parse(text, config_path, environment, secrets)
        values, new_secrets, renames, problems = _from_form(form, before, environment, config_path.name, now)
        changed = {key: value for key, value in values.items()
                   if _shown(value) != _shown(before[key]) and not _same_schedule(key, before[key], value)}
        new_text = edit_text(text, changed) if changed else text
        merged_secrets = {k: v for k, v in {**secrets, **new_secrets}.items() if v}
        try:
            after = _parse(new_text, config_path, environment, merged_secrets)
        except ConfigError as exc:
            problems += list(exc.problems)
            after = None
        if after is not None and after["delivery.provider"] not in ("maildir", "ses"):
            provider = after["delivery.provider"]
            missing = [label for name, label, p in SECRET_KEYS
                       if p == provider and not after.secret(name) and name != "PUBLISHER_SMTP_PASSWORD"]
            if missing:
                problems.append(f"{config_path.name}: [delivery] provider {after['delivery.provider']} needs its "
                                f"{missing[0]}: enter it under the provider's secrets")
        if (after is not None and after["schedule.policy"] == "digest" and not after["schedule.digest"]
                and {"schedule.policy", "schedule.digest"} & changed.keys()):
            # Articles would wait for a digest that never comes.
            problems.append(f"{config_path.name}: [schedule] digest is needed when a new article's newsletter goes "
                            "into the next digest: choose when the digest goes out, or another choice above")
        if after is not None and any(_shown(after[k]) != _shown(before[k]) for k in DKIM_KEYS):
            try:
                DkimSigner.from_config(after)
            except PublisherError as exc:
                problems.append(str(exc))
        if problems:
            timezone = [i for i, p in enumerate(problems) if "[publication] timezone" in p]
            for i in timezone:
                problems[i] += _zone_hint(str(values.get("publication.timezone", "")))
            raise ConfigError("\n".join(problems), problems=problems)
        assert after is not None
        notices: list[str] = []
        if any(key in changed for key in ("schedule.digest", "publication.timezone")) and (
            after["schedule.digest"] or before["schedule.digest"]
        ):
            notices.append(_digest_notice(after, engine, now))
        if _provider_keys(after) != _provider_keys(before):
            notice = check(after)
            if notice:
                notices.append(notice)
        audit = [SettingsChange(key, _shown(before[key]), _shown(value)) for key, value in changed.items()]
        for name, value in sorted(new_secrets.items()):
            old = secrets.get(name, "")
            if value == old:
                continue
            audit.append(SettingsChange(name, "(set)" if old else "(empty)",
                                        "(removed)" if not value else "(changed)" if old else "(set)"))
        if not audit:
            return Saved((), ("Nothing was changed.",))
        if any(value != secrets.get(name, "") for name, value in new_secrets.items()):
            write_atomically(config_path.parent / SECRETS_FILE, secrets_text(secrets, new_secrets), mode=0o600)
        if new_text != text:
            try:
                write_atomically(config_path, new_text)
            except ConfigError:
                if new_secrets:  # the two files go together: put the old secrets back
                    write_atomically(config_path.parent / SECRETS_FILE, secrets_text(secrets, {}), mode=0o600)
                raise
        # Still under the lock, so that the log's order is the order the file changed in.
        settings_audit.record(engine, audit, who=who, now=now)
        moved_readers = [(old, new, rename_topic(engine, old, new)) for old, new in renames]
    for old, new, moved in moved_readers:
        notices.append(f"Topic {old!r} is now {new!r}; {moved} reader(s) who chose it keep it. Articles keep "
                       f"the tags they were written with: tag new ones {new!r}.")
    return Saved(tuple(audit), tuple(notices))
