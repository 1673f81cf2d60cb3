"""A new publication's first files: config.toml and a welcome draft, from the author's answers.

Pure: `starter_files` takes the answers and returns file names and texts; `publisher init`
writes them. Nothing comes from the sample publication shipped with publisher (its
title, addresses, postal address or description): every value is the author's, or a
default from the settings table. Templates are left out, so the defaults apply until the
author adds an override.
"""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from publisher.config import Config, parse_config
from publisher.content import parse_article
from publisher.errors import ConfigError

__all__ = ["Answers", "starter_files"]

WELCOME_SLUG = "welcome"
_ADDRESS_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


@dataclass(frozen=True, slots=True)
class Answers:
    """What `publisher init` asks. Empty author and postal address are allowed (for now)."""

    title: str
    url: str
    sender: str
    """The From header: "Name <address>" or an address."""
    author: str = ""
    postal_address: str = ""
    timezone: str = "UTC"


def _toml(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (\\", \\\\, \\n, \\uXXXX)."""
    return json.dumps(value, ensure_ascii=False)


def _check_sender(sender: str) -> str:
    _name, address = email.utils.parseaddr(sender)
    if not _ADDRESS_RE.match(address):
        raise ConfigError(
            f"--from must be an address such as \"Dana Reyes <dana@example.org>\", got {sender!r}"
        )
    return address


def config_text(answers: Answers) -> str:
    """The new config.toml: the author's values, the rest explained in comments."""
    address = _check_sender(answers.sender)
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

    The texts are parsed before they are returned, so a title or zone that would make
    the config or the draft unreadable is refused here, naming the option.
    """
    text = config_text(answers)
    try:
        config = parse_config(text, root=root, origin="config.toml", env={})
    except ConfigError as exc:
        option = {"url": "--url", "timezone": "--timezone", "title": "--title"}
        problems = [
            re.sub(r"^config\.toml:\d+: \[\w+\] (\w+)", lambda m: option.get(m.group(1), m.group(0)), p)
            for p in exc.problems
        ]
        raise ConfigError("\n".join(problems), problems=problems) from exc
    name = f"content/{now.astimezone(config.tz):%Y-%m-%d}-{WELCOME_SLUG}.md"
    welcome = welcome_text(answers, now, config)
    parse_article(welcome, source=name, config=config)
    return {
        "config.toml": text,
        name: welcome,
        ".gitignore": "# Written by publisher: the database, the built site and its cache, the demo outbox, the demo "
        "secret, the lock taken while an article is saved.\npublisher.db*\n/public\n/.public.builds/\n"
        "/.publisher-cache/\noutbox/\n.publisher-secret\n/.content.lock\n",
    }
