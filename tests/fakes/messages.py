"""A small issue encoded once, its recipients and a config that points at fakes.

    config = publication_config(tmp_path, env={...}, delivery="[delivery.smtp]\\nport = 2525")
    template = sample_template(config)
    readers = recipients(3)           # ann0@example.net ... with ledger-style Message-IDs
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from publisher.config import Config, parse_config
from publisher.mail.newsletter import (
    HTML_PLACEHOLDERS,
    TEXT_PLACEHOLDERS,
    MessageTemplate,
    Recipient,
    message_id_for,
)
from publisher.models import RenderedIssue

__all__ = ["publication_config", "recipients", "sample_template"]

BASE = """
[publication]
title = "Field Notes"
url = "https://example.org/"

[newsletter]
from = "Dana Reyes <dana@example.org>"
reply_to = "Desk <desk@example.org>"
"""


def publication_config(
    root: Path, *, env: Mapping[str, str] | None = None, extra: str = ""
) -> Config:
    return parse_config(BASE + extra, root=root, env=dict(env or {}))


def sample_template(config: Config, *, subject: str = "Sleep, stress and the body") -> MessageTemplate:
    html = (
        f"<html><body><p>Hello {HTML_PLACEHOLDERS.name},</p><p>This week: sleep.</p>"
        f'<p><a href="{HTML_PLACEHOLDERS.unsubscribe_url}">Unsubscribe</a> '
        f"({HTML_PLACEHOLDERS.email})</p></body></html>"
    )
    text = (
        f"Hello {TEXT_PLACEHOLDERS.name},\n\nThis week: sleep.\n\n"
        f"Unsubscribe: {TEXT_PLACEHOLDERS.unsubscribe_url} ({TEXT_PLACEHOLDERS.email})\n"
    )
    rendered = RenderedIssue(key="tag:example.org,2024-05-01:/sleep", subject=subject,
                             html=html, text=text)
    return MessageTemplate.from_rendered(config, rendered)


def recipients(count: int, *, issue_id: int = 7, domain: str = "example.net") -> list[Recipient]:
    return [
        Recipient(
            delivery_id=100 + index,
            email=f"reader{index}@{domain}",
            name=f"Reader {index}",
            unsubscribe_url=f"https://example.org/unsubscribe/token{index}",
            message_id=message_id_for(f"i{issue_id}.d{100 + index}", "example.org"),
        )
        for index in range(count)
    ]
