"""The settings an owner edits in the desk, as text: which keys, how config.toml's text
changes, and a digest's cron line in words. Pure: text and values in, text and values out.

`FIELDS` names every key the desk's Settings page edits, grouped as the page shows them.
Keys that cannot change while `publisher serve` runs (`store.url`, `server.host`,
`server.port`) are not among them. The rules for each value are `parse_config`'s own: the
service edits the file's text with `edit_text` and parses the result before writing it.

`edit_text` changes only the values it is given, through tomlkit, so that the author's
comments, blank lines and order stay as they were; a table that is missing is added at the
end. `cron_in_words` and `next_fire_times` describe `schedule.digest` as an author reads it
("every Monday at 08:00 Europe/London", and the next three times); a line that never fires
(the 30th of February) is refused with the key and what to do.

The digest is chosen the same way: none, every day at HH:MM, every week on a day at HH:MM
or every month on day N (1 to 28, days every month has) at HH:MM (`DIGEST_WHEN`).
`digest_choice` reads `schedule.digest` as that choice and `digest_schedule` writes it back
as the cron line config.toml keeps; a line none of these expresses (written by hand) is
"custom": shown in words and kept as it is unless another choice is made. The send window
(`schedule.window`, "mon,thu 07:30") is days ticked and a time (`window_choice`,
`window_schedule`). `chosen_schedules` applies the three to a posted form at once.

Automatic backups are chosen as an author says them: off, every night at HH:MM, or every
week on a day at HH:MM (`BACKUP_WHEN`). `backup_choice` reads config.toml's cron line
(`backup.schedule`) as that choice; `backup_schedule` turns the form's choice back into the
line. A line that is none of these (written by hand) stays "custom", edited as its text.

Provider secrets are not config.toml's: they live in the environment or in the secrets file
beside it (`secrets_text` writes that file's `NAME=value` lines; config.secrets_beside reads them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import tomlkit
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped,unused-ignore]
from cron_descriptor import ExpressionDescriptor, Options  # type: ignore[import-untyped,unused-ignore]
from tomlkit.container import Container

from publisher.config import PROVIDER_WORDS
from publisher.errors import ConfigError
from publisher.numbers import plain_int
from publisher.schedule.timing import cron_trigger, parse_window
from publisher.services.clock import zone_label

__all__ = [
    "BACKUP_DAYS",
    "BACKUP_WHEN",
    "CHOICE_WORDS",
    "DIGEST_WHEN",
    "FIELDS",
    "GROUPS",
    "MONTH_DAYS",
    "SAVE_BUTTONS",
    "SECRET_KEYS",
    "BackupChoice",
    "DigestChoice",
    "Field",
    "WindowChoice",
    "backup_choice",
    "backup_schedule",
    "chosen_schedules",
    "cron_in_words",
    "digest_choice",
    "digest_schedule",
    "edit_text",
    "field_problems",
    "fingerprint",
    "next_fire_times",
    "secrets_text",
    "times_in_words",
    "window_choice",
    "window_schedule",
]


@dataclass(frozen=True, slots=True)
class Field:
    """One input of the Settings page: its form name, the config key it sets, its label."""

    name: str
    key: str
    label: str
    group: str
    kind: str = "text"
    """text, email, url, choice, number, tags, secret, list (items apart by commas or spaces)"""
    hint: str = ""
    choices: tuple[str, ...] = ()


GROUPS: tuple[tuple[str, str], ...] = (
    ("publication", "Publication"),
    ("sender", "Sender"),
    ("topics", "Topics readers choose"),
    ("signup", "Signup forms"),
    ("sending", "When newsletters go out"),
    ("provider", "Mail provider"),
    ("dkim", "DKIM signing"),
    ("safety", "Sign-in and backups"),
)

SAVE_BUTTONS = {
    "publication": "Save the publication's details",
    "sender": "Save the sender",
    "topics": "Save the topics",
    "signup": "Save the signup forms",
    "sending": "Save when newsletters go out",
    "provider": "Save the mail provider",
    "dkim": "Save DKIM signing",
    "safety": "Save sign-in and backups",
}
"""Each group's Save button, in plain words (a group's title lower-cased would read "dkim")."""

F = Field
FIELDS: tuple[Field, ...] = (
    F("title", "publication.title", "Name of the publication", "publication"),
    F("url", "publication.url", "Address of the public site", "publication", "url",
      "Where readers find the archive and the feeds, e.g. https://news.example.org"),
    F("public_url", "server.public_url", "Address of this app (links in mail)", "publication", "url",
      "Leave empty when it is the site's address."),
    F("language", "publication.language", "Language", "publication", hint="A language tag such as en, de or pt-BR."),
    F("timezone", "publication.timezone", "Time zone", "publication",
      hint="A zone such as Europe/London; a city name is completed."),
    F("postal_address", "publication.postal_address", "Postal address", "publication",
      hint="Printed in every email's footer; required to send."),
    F("logo", "publication.logo", "Logo", "publication",
      hint="Address of a PNG or JPEG (SVG does not show in Gmail or Outlook), shown in the newsletter's "
      "masthead, the site's header and as its icon. Empty: none."),
    F("accent_color", "publication.accent_color", "Accent colour", "publication",
      hint="Links, buttons and rules in the newsletter and the site (typed as #rrggbb, such as #1d5c63, "
      "where no colour picker shows)."),
    F("from_name", "newsletter.from", "Sender name", "sender", hint="Shown as who the newsletter is from."),
    F("from_address", "newsletter.from", "Sender address", "sender", "email"),
    # A name may come with the address ("Dana Reyes <dana@example.org>", as the sample's and
    # as every provider takes it): a plain text box, since the browser's email box refuses it.
    F(
        "reply_to",
        "newsletter.reply_to",
        "Reply-to address",
        "sender",
        "text",
        "A name may come with it: Dana Reyes <dana@example.org>. Leave empty for none.",
    ),
    F("consent_text", "subscribe.consent_text", "What readers agree to by subscribing", "signup",
      hint="Shown under every signup form and kept with each new subscriber. Empty: \"I agree to receive "
      "(the publication) by email. I can leave at any time with the link in every message.\""),
    F("allowed_origins", "subscribe.allowed_origins", "Other sites whose signup forms answer inline", "signup",
      "list", "Addresses such as https://blog.example.org, apart by commas: a form copied onto one of these "
      "sites may use the script for inline answers. The form works everywhere without it."),
    F("policy", "schedule.policy", "A new article's newsletter", "sending", "choice",
      choices=("wait", "now", "window", "digest")),
    F("window", "schedule.window", "Send window", "sending",
      hint="The days and the time a new article's newsletter goes out at, when it waits for the send window."),
    # Who gets it: services.scheduling.digest_skip_had.
    F(
        "digest",
        "schedule.digest",
        "Digest",
        "sending",
        hint="One letter gathering the articles published since the last one, to every active reader "
        "but those who had each of its articles already, one by one. Readers who chose “the digest "
        "only” get it instead of each article.",
    ),
    F("provider", "delivery.provider", "Provider", "provider", "choice",
      choices=("maildir", "smtp", "postmark", "sendgrid", "mailgun", "ses", "resend")),
    F("smtp_host", "delivery.smtp.host", "SMTP server", "provider"),
    F("smtp_port", "delivery.smtp.port", "SMTP port", "provider", "number"),
    F("smtp_security", "delivery.smtp.security", "SMTP security", "provider", "choice",
      choices=("starttls", "tls", "none")),
    F("smtp_username", "delivery.smtp.username", "SMTP user name", "provider"),
    F("mailgun_domain", "delivery.mailgun.domain", "Mailgun sending domain", "provider"),
    F("ses_region", "delivery.ses.region", "Amazon SES region", "provider"),
    F("dkim_domain", "delivery.dkim.domain", "Signing domain", "dkim",
      hint="The domain of the sender address, e.g. example.org. Empty: publisher does not sign."),
    F("dkim_selector", "delivery.dkim.selector", "Selector", "dkim",
      hint="A name for the key, such as a date: 2026dec. The DNS record goes at selector._domainkey.domain."),
    F("dkim_key_file", "delivery.dkim.private_key_file", "Private key file", "dkim",
      hint="A PEM file beside config.toml; \"Generate a key\" writes one."),
    F("require_two_factor", "desk.require_two_factor", "Two-step sign-in is required for", "safety", "choice",
      choices=("off", "owners", "everyone"),
      hint="Anyone it is required for and who has not set it up is sent to their account page first."),
    F("backup_schedule", "backup.schedule", "Automatic backups", "safety",
      hint="In the publication's time zone. Off: only when you run publisher backup."),
    F("backup_keep", "backup.keep", "Backups kept", "safety", "number",
      hint="After each automatic backup, older archives beyond this many are deleted."),
)

# What each choice means, said where it is chosen and wherever a choice made is named (Home's
# list of what is left before going live): "maildir" or "ses" is a config value, not
# something an author coming from a hosted service can be expected to know. The values
# sent stay the config's own.
CHOICE_WORDS: dict[str, dict[str, str]] = {
    "provider": {name: words.choice for name, words in PROVIDER_WORDS.items()},
    "smtp_security": {
        "starttls": "STARTTLS (usually port 587)",
        "tls": "TLS from the start (usually port 465)",
        "none": "None (only a server on this machine)",
    },
}

POLICY_WORDS = {
    "wait": "waits for me to send or schedule it",
    "now": "goes out as soon as the article is on the site",
    "window": "goes out at the next send window",
    "digest": "goes into the next digest",
}

SECRET_KEYS: tuple[tuple[str, str, str], ...] = (
    # (environment name, label, provider it belongs to)
    ("PUBLISHER_SMTP_PASSWORD", "SMTP password", "smtp"),
    ("PUBLISHER_POSTMARK_TOKEN", "Postmark server token", "postmark"),
    ("PUBLISHER_SENDGRID_API_KEY", "SendGrid API key", "sendgrid"),
    ("PUBLISHER_MAILGUN_API_KEY", "Mailgun API key", "mailgun"),
    ("PUBLISHER_RESEND_API_KEY", "Resend API key", "resend"),
    ("AWS_ACCESS_KEY_ID", "AWS access key id", "ses"),
    ("AWS_SECRET_ACCESS_KEY", "AWS secret access key", "ses"),
)


def fingerprint(text: str) -> str:
    """What a form carries of the file it was made from: a save compares it with the disk."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def edit_text(text: str, values: Mapping[str, Any]) -> str:
    """config.toml's text with each dotted key of `values` set, all else kept as written."""
    document = tomlkit.parse(text.removeprefix("\ufeff"))
    for key, value in values.items():
        *tables, name = key.split(".")
        container: Any = document
        for table_name in tables:
            inner = container.get(table_name)
            if not isinstance(inner, dict):
                inner = tomlkit.table()
                _put(container, table_name, inner)
                inner.add(tomlkit.nl())
            container = inner
        _put(container, name, list(value) if isinstance(value, tuple) else value)
    return tomlkit.dumps(document)


def _put(container: Any, name: str, value: Any) -> None:
    """Set `name`; a new key goes after the table's last value, before the blank lines and
    comments that end it (those belong with whatever follows)."""
    if name in container:
        container[name] = value
        return
    body = container.body if isinstance(container, Container) else container.value.body
    trailing: list[Any] = []
    while body and body[-1][0] is None:
        trailing.insert(0, body.pop())
    container[name] = value
    body.extend(trailing)


_PROBLEM_KEY = re.compile(r"\[(?P<section>[^\]\s]+)\] (?P<name>[A-Za-z0-9_]+):? ")


def field_problems(problems: Sequence[str], fields: Sequence[Field] = FIELDS) -> tuple[dict[str, str], list[str]]:
    """Each problem beside the field whose key it names (keyed by form name), and the rest.

    A problem reads "config.toml:12: [publication] timezone must be ..."; beside its field it
    reads "Time zone must be ...", with the field's own label.
    """
    by_key: dict[str, Field] = {}
    for field in fields:
        if field.name != "from_name":  # the From header's problems are its address's
            by_key.setdefault(field.key, field)
    beside: dict[str, str] = {}
    rest: list[str] = []
    for problem in problems:
        found = _PROBLEM_KEY.search(problem)
        if found is None:
            rest.append(problem)
            continue
        key, said = f"{found['section']}.{found['name']}", problem[found.end():].strip()
        if found["section"] == "secrets":
            beside[f"secret-{found['name']}"] = f"{found['name']} {said}"
        elif key in ("subscribe.public_tags", "subscribe.retired_tags"):
            beside["new_topic"] = said
        elif key in by_key:
            chosen = by_key[key]
            beside["from_address" if key == "newsletter.from" else chosen.name] = f"{chosen.label} {said}"
        else:
            rest.append(problem)
    return beside, rest


_WEEKDAYS = {
    "mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
    "sat": "Saturday", "sun": "Sunday", "0": "Sunday", "1": "Monday", "2": "Tuesday", "3": "Wednesday",
    "4": "Thursday", "5": "Friday", "6": "Saturday", "7": "Sunday",
}


def _trigger(cron: str, zone: str, key: str = "[schedule] digest") -> CronTrigger:
    return cron_trigger(cron, ZoneInfo(zone), key)


def next_fire_times(
    cron: str, zone: str, now: datetime, count: int = 3, *, key: str = "[schedule] digest", empty: str = "no digest"
) -> list[datetime]:
    """The next `count` times a cron line (the digest's, by default) runs, in `zone`;
    ConfigError naming `key` if it never does."""
    trigger = _trigger(cron, zone, key)
    times: list[datetime] = []
    previous: datetime | None = None
    moment = now.astimezone(ZoneInfo(zone))
    for _ in range(count):
        upcoming = trigger.get_next_fire_time(previous, moment)
        if upcoming is None:
            break
        times.append(upcoming)
        previous, moment = upcoming, upcoming
    if not times:
        raise ConfigError(
            f"{key} {cron!r} never fires (no such date comes, such as the 30th of February): "
            f"choose days that exist, or leave it empty for {empty}"
        )
    return times



def _numbers(*fields: str) -> bool:
    """Whether each of a cron line's `fields` is a plain number (not "*/5", not "²")."""
    return all(plain_int(f, digits=4) is not None for f in fields)

def cron_in_words(cron: str, zone: str) -> str:
    """"every Monday at 08:00 Europe/London" for the common daily, weekly and monthly lines; cron-descriptor's
    sentence with the zone for the rest, a day of the month and a weekday said as both to match
    (as the scheduler reads them). ConfigError for a line that is not cron. The zone is said
    as a label ("America/New York"); `zone` itself is the key the scheduler reads."""
    _trigger(cron, zone)
    zone = zone_label(zone)
    fields = cron.split()
    if len(fields) == 5:
        minute, hour, day, month, weekday = fields
        if _numbers(minute, hour, day) and month == "*" and weekday == "*":
            return f"every month on day {int(day)} at {int(hour):02d}:{int(minute):02d} {zone}"
        if _numbers(minute, hour) and day == "*" and month == "*":
            at = f"{int(hour):02d}:{int(minute):02d} {zone}"
            if weekday == "*":
                return f"every day at {at}"
            days = [_WEEKDAYS.get(part.lower()) for part in weekday.split(",")]
            if all(days):
                names = [d for d in days if d]
                listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
                return f"every {listed} at {at}"
        if day not in ("*", "?") and weekday not in ("*", "?"):
            # The scheduler sends when both match (cron's "or" is not APScheduler's way).
            on_days = _described(f"{minute} {hour} {day} {month} *")
            on_weekdays = _described(f"0 0 * * {weekday}").removeprefix("At 00:00, ").removeprefix("only ")
            return _with_zone(f"{on_days}, and only {on_weekdays}", zone)
    return _with_zone(_described(cron), zone)


def _described(cron: str) -> str:
    """cron-descriptor's sentence for a line ("At 08:00, only on Monday")."""
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    return str(ExpressionDescriptor(cron, options).get_description())


def _with_zone(sentence: str, zone: str) -> str:
    return f"{sentence[:1].lower()}{sentence[1:]} ({zone})"


BACKUP_WHEN = {
    "off": "Off",
    "nightly": "Every night",
    "weekly": "Every week",
    "custom": "At the times of this cron line",
}
BACKUP_DAYS = (
    ("mon", "Monday"), ("tue", "Tuesday"), ("wed", "Wednesday"), ("thu", "Thursday"),
    ("fri", "Friday"), ("sat", "Saturday"), ("sun", "Sunday"),
)
_DAY_KEYS = {name.lower(): key for key, name in BACKUP_DAYS} | {
    key: next(k for k, name in BACKUP_DAYS if name == full) for key, full in _WEEKDAYS.items()
}
_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])(?::[0-5][0-9])?")
BACKUP_TIME = "03:30"
"""The time first offered, at night when nobody writes."""


@dataclass(frozen=True, slots=True)
class BackupChoice:
    when: str
    """A key of BACKUP_WHEN."""
    day: str
    """A key of BACKUP_DAYS (used when weekly)."""
    time: str
    """HH:MM (used when nightly or weekly)."""
    cron: str
    """The line as written (shown when custom)."""


def backup_choice(cron: str) -> BackupChoice:
    """config.toml's `backup.schedule` as the choice the Settings page offers."""
    line = " ".join(cron.split())
    if not line:
        return BackupChoice("off", "mon", BACKUP_TIME, "")
    fields = line.split(" ")
    if len(fields) == 5 and _numbers(fields[0], fields[1]) and fields[2:4] == ["*", "*"]:
        minute, hour, weekday = int(fields[0]), int(fields[1]), fields[4].lower()
        if minute < 60 and hour < 24:
            at = f"{hour:02d}:{minute:02d}"
            if weekday == "*":
                return BackupChoice("nightly", "mon", at, line)
            if weekday in _DAY_KEYS:
                return BackupChoice("weekly", _DAY_KEYS[weekday], at, line)
    return BackupChoice("custom", "mon", BACKUP_TIME, line)


def backup_schedule(form: Mapping[str, str]) -> dict[str, str]:
    """The form with `backup_schedule` (the cron line) made from the choice posted as
    `backup_when`, `backup_day` and `backup_time`; a form without the choice (an older page,
    a script) is returned as it is. ConfigError naming `[backup] schedule` for a time or a day
    that is not one; a custom line is checked as any line is."""
    when = form.get("backup_when")
    if when is None:
        return dict(form)
    chosen = dict(form)
    if when == "off":
        chosen["backup_schedule"] = ""
    elif when in ("nightly", "weekly"):
        typed = form.get("backup_time", "").strip()
        clock = _CLOCK.fullmatch(typed)
        if clock is None:
            raise ConfigError(
                f"[backup] schedule: need a time written HH:MM, such as {BACKUP_TIME}, not {typed!r}"
                if typed else f"[backup] schedule: need a time, such as {BACKUP_TIME}"
            )
        day = "*"
        if when == "weekly":
            day = form.get("backup_day", "")
            if day not in dict(BACKUP_DAYS):
                raise ConfigError(f"[backup] schedule: need a day of the week, Monday to Sunday, not {day!r}")
        chosen["backup_schedule"] = f"{int(clock[2])} {int(clock[1])} * * {day}"
    elif when != "custom":
        raise ConfigError(f"[backup] schedule: choose Off, Every night or Every week, not {when!r}")
    return chosen


DIGEST_WHEN = {
    "off": "No digest",
    "daily": "Every day",
    "weekly": "Every week",
    "monthly": "Every month",
    "custom": "As written by hand",
}
DIGEST_TIME = "08:00"
"""The time first offered: morning, before the working day."""
MONTH_DAYS = tuple(str(day) for day in range(1, 29))
"""The days of the month a monthly digest may go on: every month has them."""


@dataclass(frozen=True, slots=True)
class DigestChoice:
    when: str
    """A key of DIGEST_WHEN."""
    day: str
    """A key of BACKUP_DAYS (used when weekly)."""
    monthday: str
    """One of MONTH_DAYS (used when monthly)."""
    time: str
    """HH:MM (used unless off or custom)."""
    cron: str
    """The line as written (kept when custom)."""


def digest_choice(cron: str) -> DigestChoice:
    """config.toml's `schedule.digest` as the choice the Settings page offers."""
    line = " ".join(cron.split())
    if not line:
        return DigestChoice("off", "mon", "1", DIGEST_TIME, "")
    fields = line.split(" ")
    if len(fields) == 5 and _numbers(fields[0], fields[1]) and fields[3] == "*":
        minute, hour, day, weekday = int(fields[0]), int(fields[1]), fields[2], fields[4].lower()
        if minute < 60 and hour < 24:
            at = f"{hour:02d}:{minute:02d}"
            if day == "*" and weekday == "*":
                return DigestChoice("daily", "mon", "1", at, line)
            if day == "*" and weekday in _DAY_KEYS:
                return DigestChoice("weekly", _DAY_KEYS[weekday], "1", at, line)
            if weekday == "*" and _numbers(day) and str(int(day)) in MONTH_DAYS:
                return DigestChoice("monthly", "mon", str(int(day)), at, line)
    return DigestChoice("custom", "mon", "1", DIGEST_TIME, line)


def _time_of(typed: str, key: str, example: str) -> tuple[int, int]:
    """(hour, minute) of a time typed HH:MM; ConfigError naming `key` for anything else."""
    clock = _CLOCK.fullmatch(typed.strip())
    if clock is None:
        raise ConfigError(
            f"{key}: time must be written HH:MM, from 00:00 to 23:59, such as {example}, not {typed.strip()!r}"
            if typed.strip() else f"{key}: time is missing: choose one, such as {example}"
        )
    return int(clock[1]), int(clock[2])


def digest_schedule(form: Mapping[str, str]) -> dict[str, str]:
    """The form with `digest` (the cron line) made from the choice posted as `digest_when`,
    `digest_day`, `digest_monthday` and `digest_time`; a form without the choice (an older
    page, a script) is returned as it is, and "custom" keeps the line the form carries.
    ConfigError naming `[schedule] digest` for a time, a day or a choice that is not one."""
    when = form.get("digest_when")
    if when is None:
        return dict(form)
    chosen = dict(form)
    if when == "off":
        chosen["digest"] = ""
    elif when in ("daily", "weekly", "monthly"):
        hour, minute = _time_of(form.get("digest_time", ""), "[schedule] digest", DIGEST_TIME)
        day, weekday = "*", "*"
        if when == "weekly":
            weekday = form.get("digest_day", "").strip().lower()
            if weekday not in dict(BACKUP_DAYS):
                raise ConfigError(
                    f"[schedule] digest: day of the week must be one of Monday to Sunday, not {weekday!r}"
                    if weekday else "[schedule] digest: day of the week is missing: choose one, Monday to Sunday"
                )
        elif when == "monthly":
            day = form.get("digest_monthday", "").strip()
            if not day:
                raise ConfigError("[schedule] digest: day of the month is missing: choose one from 1 to 28")
            if day not in MONTH_DAYS:
                raise ConfigError(
                    f"[schedule] digest: day of the month must be 1 to 28, days that every month has, not {day!r}"
                )
        chosen["digest"] = f"{minute} {hour} {day} * {weekday}"
    elif when != "custom":
        raise ConfigError(
            f"[schedule] digest: choose No digest, Every day, Every week or Every month, not {when!r}"
        )
    return chosen


@dataclass(frozen=True, slots=True)
class WindowChoice:
    days: tuple[str, ...]
    """Keys of BACKUP_DAYS, Monday first."""
    time: str
    """HH:MM."""


def window_choice(window: str) -> WindowChoice:
    """config.toml's `schedule.window` ("mon,thu 07:30", "daily 09:00") as days and a time;
    a line that is not one (config.toml refuses it before the page shows) offers Tuesday 08:00."""
    try:
        parsed = parse_window(window)
    except ConfigError:
        return WindowChoice(("tue",), "08:00")
    return WindowChoice(tuple(BACKUP_DAYS[day][0] for day in parsed.days), f"{parsed.at:%H:%M}")


def window_schedule(form: Mapping[str, str]) -> dict[str, str]:
    """The form with `window` made from the days ticked (`window_mon`...`window_sun`) and
    `window_time`; a form without `window_time` is returned as it is. ConfigError naming
    `[schedule] window` for no day ticked or a time that is not one."""
    if "window_time" not in form:
        return dict(form)
    days = [key for key, _ in BACKUP_DAYS if form.get(f"window_{key}")]
    if not days:
        raise ConfigError("[schedule] window: needs at least one day ticked")
    hour, minute = _time_of(form["window_time"], "[schedule] window", "08:00")
    chosen = dict(form)
    chosen["window"] = f"{'daily' if len(days) == 7 else ','.join(days)} {hour:02d}:{minute:02d}"
    return chosen


def chosen_schedules(form: Mapping[str, str]) -> dict[str, str]:
    """The form with the digest, the send window and the backups made from their choices
    (`digest_schedule`, `window_schedule`, `backup_schedule`); one ConfigError listing every
    choice that is not one."""
    chosen = dict(form)
    problems: list[str] = []
    for made in (digest_schedule, window_schedule, backup_schedule):
        try:
            chosen = made(chosen)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError("\n".join(problems), problems=problems)
    return chosen


def times_in_words(times: Sequence[datetime]) -> str:
    """"Monday 14 December 2026 at 08:00, Monday 21 December 2026 at 08:00 and ..."."""
    said = [f"{t:%A} {t.day} {t:%B %Y} at {t:%H:%M}" for t in times]
    if len(said) < 2:
        return "".join(said)
    return ", ".join(said[:-1]) + " and " + said[-1]


def secrets_text(current: Mapping[str, str], changes: Mapping[str, str]) -> str:
    """The secrets file with `changes` applied (an empty value removes that secret)."""
    merged = {**current, **changes}
    lines = ["# Secrets written by the desk's Settings page. Keep this file private (mode 0600)."]
    lines += [f"{name}={value}" for name, value in sorted(merged.items()) if value]
    return "\n".join(lines) + "\n"
