"""What an author looks at before and after a send: the checks, and an issue's email as sent.

`run_checks` runs the checks before a send (`mail.preflight`) on threads of their own,
so that checks waiting on slow sites leave the desk and the API answering. `issue_email`
is an issue's stored snapshot spliced for a sample reader, exactly as each reader's copy
is made, so the desk shows what went out, not what the article says today. `desk_words`
says a check that names a config key as the desk's author reads it: in Settings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from publisher.config import Config
from publisher.mail import preflight
from publisher.mail.mime import MessageTemplate, Recipient
from publisher.mail.preflight import Check, DnsRecord, desk_words
from publisher.models import Article, RenderedIssue
from publisher.store import issues as issue_store

__all__ = ["Check", "DnsRecord", "desk_words", "issue_email", "run_checks"]

async def run_checks(config: Config, article: Article, **options: Any) -> tuple[list[Check], list[DnsRecord]]:
    """The checks before a send (`preflight.run_checks`'s options), off the server's threads."""
    return await preflight.run_checks_apart(config, article, **options)


def issue_email(config: Config, db: Engine, issue_id: int) -> str:
    """The HTML of issue `issue_id` as a sample reader received it; NotFound for no such issue."""
    snapshot = issue_store.get_issue(db, issue_id)
    rendered = RenderedIssue(key=snapshot.key, subject=snapshot.subject, html=snapshot.html, text=snapshot.text)
    template = MessageTemplate.from_rendered(config, rendered)
    sample = Recipient(
        delivery_id=None, email="reader@example.com", name="Reader",
        unsubscribe_url=config.public_url + "/unsubscribe/example", message_id="",
        manage_url=config.public_url + "/manage/example",
    )
    html, _text = template.parts(sample)
    return html
