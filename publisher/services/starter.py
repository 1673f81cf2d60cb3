"""A publication's first files, and the answers `publisher init` asks for, each checked alone.

`publisher init` asks six questions (`QUESTIONS`). Each answer is checked the moment it
is given (`check_answer`), so a wrong one is asked again at once rather than after the
sixth: a time zone is completed from a city ("london" is Europe/London; several zones
that fit are offered; a name that fits none is told with an example), an address
without a scheme gets https://, a From needs an address (a display name may come with
it), and a postal address is needed before a real provider may send (the law in many
countries asks every newsletter to carry one). Messages say what is wrong with the
answer and never name a command-line option: the face adds the option's name when the
answer came from one.

    check_answer     one answer in, the value to keep out (ConfigError when unusable);
                     pure but for the system's zone names, read once
    host_resolves    the one look-up: does the site's host resolve, within a deadline
    starter_files    pure: a new publication's config.toml, welcome draft and .gitignore
    current_answers  what an existing config.toml answers today (the defaults of a re-run)
    updated_config   an existing config.toml with only the answered keys changed
                     (tomlkit: comments, order and every other key stay as they were)
    write_config     config.toml replaced in one step (a temp file, then a rename)

Nothing comes from the sample publication shipped with publisher (its title, addresses,
postal address or description): every value is the author's, or a default from the
settings table. Templates are left out, so the defaults apply until the author adds an
override.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import socket
import tempfile
import threading
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import tomlkit
import tomlkit.exceptions

from publisher.config import Config, parse_config
from publisher.content import parse_article
from publisher.errors import ConfigError
from publisher.mail.mime import split_mailbox
from publisher.services.settings_text import edit_text

__all__ = [
    "QUESTIONS", "Answers", "Question", "check_answer", "current_answers", "host_resolves", "starter_files",
    "updated_config", "write_config", "zone_for",
]

WELCOME_SLUG = "welcome"
RESOLVE_SECONDS = 3.0
"""How long `host_resolves` waits for the system's resolver."""
_ADDRESS_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_REGIONS = frozenset(
    {"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"}
)
_CHOICES_SHOWN = 8


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    """The answer's name (an `Answers` field)."""
    flag: str
    """The command-line option that gives it instead."""
    prompt: str
    key: str
    """The config.toml key the answer goes to."""
    required: bool


QUESTIONS = (
    Question("title", "--title", "Title of the publication", "publication.title", True),
    Question("url", "--url", "Public address of the site (e.g. notes.example.org)", "publication.url", True),
    Question("author", "--author", "Author, as readers should see it", "publication.author", False),
    Question("sender", "--from", "Newsletters come From (e.g. Dana Reyes <dana@example.org>)", "newsletter.from", True),
    Question(
        "postal_address", "--postal-address",
        "Postal address for the newsletter footer (the law in many countries asks every newsletter to carry one)",
        "publication.postal_address", False,
    ),
    Question("timezone", "--timezone", "Time zone (a city such as London or Europe/Paris)", "publication.timezone",
             False),
)
"""What `publisher init` asks, in order."""


@dataclass(frozen=True, slots=True)
class Answers:
    """What `publisher init` asks, each already through `check_answer`."""

    title: str
    url: str
    sender: str
    """The From header: "Name <address>" or an address."""
    author: str = ""
    postal_address: str = ""
    timezone: str = "UTC"


def _one_line(value: str, what: str) -> str:
    value = value.strip()
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{what} must fit on one line")
    return value


def _check_title(value: str, *, real_provider: bool) -> str:
    value = _one_line(value, "the title")
    if not value:
        raise ConfigError("a title is needed: readers see it on the site and in their inbox")
    return value


def _check_url(value: str, *, real_provider: bool) -> str:
    value = _one_line(value, "the address")
    if not value:
        raise ConfigError("the site's public address is needed, e.g. notes.example.org")
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{value!r} is not a web address: give one such as https://notes.example.org/")
    if not _is_host(host) or parts.username or parts.query or parts.fragment:
        raise ConfigError(f"{value!r} is not a web address: give one such as https://notes.example.org/")
    return value if value.endswith("/") else value + "/"


def _is_host(host: str) -> bool:
    """A DNS name (in any script: "bücher.example" is asked for as xn--bcher-kva.example) or an IP address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return bool(ascii_host) and bool(_HOST_RE.match(ascii_host))


def _check_author(value: str, *, real_provider: bool) -> str:
    return _one_line(value, "the author")


def _check_sender(value: str, *, real_provider: bool) -> str:
    value = _one_line(value, "the From")
    _name, address = split_mailbox(value)
    if not _ADDRESS_RE.match(address):
        raise ConfigError(
            f"{value!r} has no email address: give one such as \"Dana Reyes <dana@example.org>\" or dana@example.org"
        )
    return value


def _check_postal(value: str, *, real_provider: bool) -> str:
    value = _one_line(value, "the postal address")
    if not value and real_provider:
        raise ConfigError(
            "a postal address is needed before newsletters go out through a real provider: the law in many "
            "countries (CAN-SPAM in the US, CASL in Canada, the ePrivacy rules in Europe) asks every "
            "newsletter to say where its sender can be reached; a PO box will do"
        )
    return value


def _check_zone(value: str, *, real_provider: bool) -> str:
    return zone_for(value)


_CHECKS = {
    "title": _check_title, "url": _check_url, "author": _check_author, "sender": _check_sender,
    "postal_address": _check_postal, "timezone": _check_zone,
}


def check_answer(name: str, value: str, *, real_provider: bool = False) -> str:
    """The value to keep for answer `name`, completed where it can be; ConfigError says what
    is wrong with it (never naming an option). `real_provider`: the publication sends through
    a provider other than maildir, so a postal address is required."""
    return _CHECKS[name](value, real_provider=real_provider)


def _zone_files() -> tuple[frozenset[str], Mapping[str, str]]:
    """Every zone name, and each alias's real name ("Europe/Kiev" -> "Europe/Kyiv") where
    the system's tzdata.zi tells them apart."""
    names = frozenset(zoneinfo.available_timezones())
    links: dict[str, str] = {}
    for folder in zoneinfo.TZPATH:
        try:
            text = (Path(folder) / "tzdata.zi").read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("L "):
                _, target, alias = line.split()[:3]
                links[alias] = target
        break
    return names, links


@functools.cache
def _zone_index() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Zone names by their lower-cased name, and real zone names by their lower-cased city."""
    names, links = _zone_files()
    by_name = {name.lower(): name for name in names}
    by_city: dict[str, list[str]] = {}
    for name in sorted(names):
        if name.split("/")[0] not in _REGIONS:
            continue
        real = links.get(name, name)
        if real not in names:
            real = name
        city = name.rsplit("/", 1)[1].lower()
        places = by_city.setdefault(city, [])
        if real not in places:
            places.append(real)
    return by_name, by_city


def zone_for(value: str) -> str:
    """The IANA zone an author means: an exact name in any case ("europe/paris"), or a city
    ("London", "new york", "Kiev" -> Europe/Kyiv), or the start of one when only one zone
    fits; ConfigError names the zones that fit when several do, or gives an example."""
    typed = " ".join(value.split())
    if not typed:
        raise ConfigError("a time zone is needed: a city such as London, or a name such as Europe/Paris")
    by_name, by_city = _zone_index()
    key = typed.replace(" ", "_").lower()
    if key in by_name:
        return by_name[key]
    city = key.rsplit("/", 1)[-1]
    found = by_city.get(city) or sorted(
        {zone for name, zones in by_city.items() if name.startswith(city) for zone in zones}
    )
    if "/" in key:
        found = [zone for zone in found if zone.lower().startswith(key.split("/", 1)[0] + "/")] or found
    if len(found) == 1:
        return found[0]
    if found:
        shown = ", ".join(found[:_CHOICES_SHOWN]) + (f" and {len(found) - _CHOICES_SHOWN} more"
                                                      if len(found) > _CHOICES_SHOWN else "")
        raise ConfigError(f"several time zones fit {typed!r}: {shown}; type the one you mean")
    raise ConfigError(f"no time zone called {typed!r}; try a city such as London, or a name such as Europe/Paris")


def host_resolves(url: str, *, timeout: float = RESOLVE_SECONDS) -> str | None:
    """None when the URL's host resolves within `timeout` seconds, else why not (the system's
    resolver has no deadline of its own, so it asks from a thread and stops waiting)."""
    host = urlsplit(url).hostname or ""
    outcome: list[str | None] = []

    def ask() -> None:
        try:
            socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            outcome.append(f"{host} does not resolve ({getattr(exc, 'strerror', None) or exc})")
        else:
            outcome.append(None)

    thread = threading.Thread(target=ask, daemon=True, name="publisher-init-resolve")
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"{host} did not resolve within {timeout:g} s"
    return outcome[0]


def _toml(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (\\", \\\\, \\n, \\uXXXX)."""
    return json.dumps(value, ensure_ascii=False)


def config_text(answers: Answers) -> str:
    """The new config.toml: the author's values, the rest explained in comments."""
    address = split_mailbox(check_answer("sender", answers.sender))[1]
    url = answers.url if answers.url.endswith("/") else answers.url + "/"
    return f"""\
# {answers.title}: settings for publisher. Every key is explained in publisher's README
# ("Configuration"); `publisher check` validates this file. Secrets never go here: they
# come from the environment (PUBLISHER_SECRET, your provider's key).

[publication]
title = {_toml(answers.title)}
url = {_toml(url)}
description = ""
author = {_toml(answers.author)}
# Your public contact address, shown in the feeds (managingEditor).
email = {_toml(address)}
language = "en"
timezone = {_toml(answers.timezone)}
# Printed in every newsletter's footer; the law (CAN-SPAM and others) asks for it, and
# publisher refuses to send through a real provider without it.
postal_address = {_toml(answers.postal_address)}

[newsletter]
from = {_toml(answers.sender)}
# Where replies go; empty: to the From address.
reply_to = ""

[delivery]
# "maildir" writes each message as an .eml file into outbox/ and sends nothing: try it
# first. Then choose smtp, postmark, sendgrid, mailgun, ses or resend, fill its table
# (see README, "Choosing a provider") and export PUBLISHER_SECRET:
#     export PUBLISHER_SECRET=$(openssl rand -hex 32)
provider = "maildir"

# [delivery.smtp]
# host = "smtp.example.org"
# port = 587
# security = "starttls"          # none, starttls or tls
# username = ""                  # the password comes from PUBLISHER_SMTP_PASSWORD

[store]
url = "sqlite:///publisher.db"

[server]
# Where `publisher serve` listens, and the public address of its subscribe and
# unsubscribe pages (empty: publication.url).
host = "127.0.0.1"
port = 8000
public_url = ""

[schedule]
# What a new article's newsletter does once the article is on the site: "wait" for you
# to send or schedule it (in the desk, or `publisher send SLUG` / `publisher schedule`),
# "window" (the next send window below), "digest", or "now": every new file in content/
# mailed to the whole list at once, for a pure blog-to-email setup. Articles saved in the
# desk always wait for you.
policy = "wait"
window = "tue 08:00"
"""


def welcome_text(answers: Answers, now: datetime, config: Config) -> str:
    """A first article, a draft, that says what to do next."""
    local = now.astimezone(config.tz)
    title = _toml(f"Welcome to {answers.title}")
    return f"""\
---
title: {title}
date: {local:%Y-%m-%d %H:%M}
slug: {WELCOME_SLUG}
tags: []
# summary: one or two sentences for feeds and the email preview
# send_at: {local:%Y-%m-%d} 09:00   # mail it then (`publisher serve` sends it); or `publisher schedule`
draft: true
---

This is the first article of {answers.title}. It is a draft: nothing is published or
mailed until you remove `draft: true` above.

## What next

- Write: `publisher new "A title"` starts another article in `content/`.
- Look: `publisher build` writes the feeds, the archive and a preview of each newsletter
  into `public/`.
- Try a newsletter: `publisher send {WELCOME_SLUG} --to you@example.org` sends you a test copy
  (with the `maildir` provider it lands in `outbox/new/`).
"""


def starter_files(answers: Answers, now: datetime, *, root: Path) -> dict[str, str]:
    """File names (relative to the new folder) and their texts; ConfigError for a bad answer.

    The texts are parsed before they are returned, so nothing unreadable is ever written.
    """
    text = config_text(answers)
    config = parse_config(text, root=root, origin="config.toml", env={})
    name = f"content/{now.astimezone(config.tz):%Y-%m-%d}-{WELCOME_SLUG}.md"
    welcome = welcome_text(answers, now, config)
    parse_article(welcome, source=name, config=config)
    return {
        "config.toml": text,
        name: welcome,
        ".gitignore": "# Written by publisher: the database, the built site and its cache, the demo outbox, the demo "
        "secret, the keys typed in the desk's Settings, the DKIM keys it makes, the locks taken while an "
        "article or the settings are saved, the daemon's heartbeat, the backups (they hold every reader's "
        "address).\npublisher.db*\n/public\n/.public.builds/\n/.publisher-cache/\noutbox/\n.publisher-secret\n"
        "/.publisher-secrets\n/dkim-*.pem\n/.content.lock\n/.publisher-settings.lock\n/.publisher-heartbeat\n"
        "/backups/\n/publisher-export-*.zip\n",
    }


def _document(text: str, origin: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{origin}: {exc}; fix it (or move it away) and run publisher init again") from exc


def _get(document: Mapping[str, object], key: str) -> object:
    node: object = document
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def current_answers(text: str, *, origin: str = "config.toml") -> tuple[dict[str, str], bool]:
    """What an existing config.toml answers to each question (questions it leaves out are
    missing), and whether it sends through a real provider (anything but maildir)."""
    document = _document(text, origin)
    found: dict[str, str] = {}
    for question in QUESTIONS:
        value = _get(document, question.key)
        if isinstance(value, str):
            found[question.name] = str(value)
    provider = _get(document, "delivery.provider")
    return found, isinstance(provider, str) and str(provider) not in ("", "maildir")


def updated_config(text: str, answers: Mapping[str, str], *, root: Path, origin: str = "config.toml") -> str:
    """`text` with the answered keys set, everything else (comments, order, other keys) kept,
    through the desk's own writer (`settings_text.edit_text`).

    `publication.email` follows the From address when it was the From's address before (as
    `publisher init` writes it). The result is parsed as a whole before it is returned:
    ConfigError names what is wrong and nothing is written.
    """
    document = _document(text, origin)
    old_from = _get(document, "newsletter.from")
    old_address = split_mailbox(str(old_from))[1] if isinstance(old_from, str) else None
    values: dict[str, str] = {}
    if "sender" in answers and old_address is not None and _get(document, "publication.email") == old_address:
        values["publication.email"] = split_mailbox(answers["sender"])[1]
    values.update({q.key: answers[q.name] for q in QUESTIONS if q.name in answers})
    result = edit_text(text, values)
    parse_config(result, root=root, origin=origin, env={})
    return result


def write_config(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step, keeping its mode: a full disk or a crash leaves
    the old file whole."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".config.", suffix=".toml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        Path(temp).chmod(mode)
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
