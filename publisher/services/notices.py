"""Short plain notices from the desk to one person: a held send for the owners, a link to
set a forgotten password.

A notice goes through the publication's provider like a test copy: one message per
address, with no unsubscribe link (it is not a newsletter) and no tracking. A provider's
refusal is logged, never raised: whoever waits for a notice can ask again, and a held
send shows on the desk's Home as well.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from email.utils import make_msgid

from publisher.config import Config
from publisher.delivery.base import Provider, make_provider
from publisher.errors import PublisherError
from publisher.mail import newsletter
from publisher.mail.mime import clean_header_text
from publisher.models import Outcome, RenderedIssue

__all__ = ["mail_notice", "password_reset_lines"]

log = logging.getLogger(__name__)


def mail_notice(
    config: Config,
    addresses: Sequence[str],
    *,
    subject: str,
    lines: Sequence[str],
    now: datetime,
    link: str = "",
    provider_factory: Callable[[Config], Provider] = make_provider,
) -> int:
    """Mail each of `addresses` the paragraphs `lines` (and `link`, a link of its own after
    them); how many were taken by the provider."""
    if not addresses:
        return 0
    paragraphs = [*lines, link] if link else list(lines)
    text = "\n\n".join(paragraphs) + "\n"
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    if link:
        body += f'<p><a href="{html.escape(link)}">{html.escape(link)}</a></p>'
    rendered = RenderedIssue(
        key="notice",
        subject=clean_header_text(subject),
        html=f"<!doctype html><html><body>{body}</body></html>",
        text=text,
    )
    template = newsletter.MessageTemplate.from_rendered(config, rendered)
    domain = template.sender_address.rpartition("@")[2] or "localhost"
    provider = provider_factory(config)
    told = 0
    try:
        for address in addresses:
            recipient = newsletter.Recipient(
                delivery_id=None,
                email=address,
                name="",
                unsubscribe_url="",
                message_id=make_msgid(idstring="notice", domain=domain),
            )
            try:
                (result,) = provider.send(template, [recipient], now=now)
            except PublisherError as exc:
                log.error("the notice %r to %s was not sent: %s", subject, address, exc)
                continue
            if result.outcome is Outcome.SENT:
                told += 1
            else:
                log.error("the notice %r to %s was not sent (%s): %s", subject, address, result.outcome, result.detail)
    finally:
        provider.close()
    return told


def password_reset_lines(config: Config, email: str, minutes: int) -> tuple[str, list[str]]:
    """The subject and paragraphs of the mail that carries a link to set a new password."""
    title = str(config["publication.title"])
    within = "an hour" if minutes == 60 else f"{minutes} minutes"
    return f"Set a new password for the {title} desk", [
        f"Someone asked to set a new password for {email} on the desk of {title}. "
        f"If it was you, open the link below within {within} and choose a new password. "
        "It works once.",
        "If it was not you, ignore this message: your password stays as it is, and nobody can "
        "use the link without this mailbox.",
    ]
