"""From an article to a snapshot in the ledger, and from the ledger to the provider.

The steps the CLI (`publisher send`, `schedule`) and the daemon share: an issue is
rendered once per send and snapshotted in the store; delivery reads only the snapshot.
A send renders the article as it is when the send starts (a scheduled one when its time
comes, see `refresh_for_send`); once its first copy has left, the snapshot is frozen and
every later reader gets the same bytes (see `publisher.store.issues`).
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from publisher.config import Config
from publisher.errors import ConfigError, NotFound
from publisher.mail import newsletter
from publisher.models import Article, Issue, IssueKind
from publisher.store import ledger
from publisher.store.subscribers import clean_tags

if TYPE_CHECKING:
    from publisher.delivery.base import Provider

log = logging.getLogger(__name__)

__all__ = [
    "deliver_queued",
    "digest_issue",
    "fail_unusable_addresses",
    "find_article",
    "prepare_article_issue",
    "prepare_digest_issue",
    "refresh_for_send",
    "require_postal_address",
]


def find_article(
    articles: Sequence[Article], slug: str, *, now: datetime, unpublished: str | None = None
) -> Article:
    """The public article called `slug`, or an error that lists the closest slugs.

    `unpublished` says what to do about a draft or a future article instead of sending it
    (the test copy of `publisher send --to` passes "" to take them as they are).
    """
    found = next((a for a in articles if a.slug == slug), None)
    if found is not None:
        if found.is_public(now) or unpublished == "":
            return found
        why = "is a draft" if found.draft else f"is dated {found.date:%Y-%m-%d %H:%M}, in the future"
        advice = unpublished or (
            "only published articles go to the list; `publisher send "
            f"{slug} --to YOU@EXAMPLE.ORG` sends yourself a test copy"
        )
        raise NotFound(f"article {slug!r} {why}: {advice}")
    close = difflib.get_close_matches(slug, [a.slug for a in articles], n=3, cutoff=0.5)
    if close:
        hint = f" Did you mean {', '.join(close)}?"
    elif articles:
        hint = " The newest are: " + ", ".join(a.slug for a in articles[:3]) + "."
    else:
        hint = " The content folder has no articles yet (`publisher new TITLE` starts one)."
    raise NotFound(f"no article with slug {slug!r}.{hint}")


def require_postal_address(config: Config) -> None:
    """Refuse to mail a list through a real provider without the sender's postal address.

    CAN-SPAM (and the like elsewhere) asks every bulk mail for a valid physical postal
    address; the Maildir demo writes files and reaches nobody, so it is exempt.
    """
    if config["delivery.provider"] == "maildir" or str(config["publication.postal_address"]).strip():
        return
    raise ConfigError(
        "config.toml: [publication] postal_address is empty, and newsletters sent through "
        f"{config['delivery.provider']!r} must show the sender's postal address in their footer "
        "(CAN-SPAM). Set it, e.g. postal_address = \"Your Name, 1 Main Street, Town, Country\", "
        "and run again."
    )


def prepare_article_issue(
    config: Config, db: sa.Engine, article: Article, *, now: datetime, status: str = "draft", tag: str | None = None
) -> int:
    """Render the article's newsletter as it is now and snapshot it.

    The same article keeps one issue (and its status and segment); its snapshot follows
    the article until the first copy leaves, and stays as that copy was from then on.
    """
    existing = ledger.find_issue(db, article.id)
    issue = newsletter.issue_for_article(config, article)
    if existing is None:
        return _snapshot(
            config, db, issue, slug=article.slug, now=now, status=status, tag=tag,
            topics=article_topics(config, article),
        )
    if not ledger.is_frozen(db, existing.id):
        rendered = newsletter.render_issue(config, issue, now)
        ledger.refresh_issue(db, existing.id, subject=rendered.subject, html=rendered.html, text=rendered.text)
    return existing.id


def refresh_for_send(
    config: Config, db: sa.Engine, issue_id: int, *, now: datetime, articles: Callable[[], Sequence[Article]]
) -> str:
    """Render a scheduled article issue from the article as it is now, as its send starts.

    Returns "" to go ahead (a digest, or an issue already frozen, goes as it is), or why
    the send must not happen: the article was removed, made a draft or dated later since
    it was scheduled. `articles` loads them (only when needed); when that fails, the
    snapshot taken at scheduling goes out, and the caller says so.
    """
    issue = ledger.get_issue(db, issue_id)
    if issue.kind != IssueKind.ARTICLE.value or ledger.is_frozen(db, issue_id):
        return ""
    article = next((a for a in articles() if a.id == issue.key), None)
    if article is None:
        return f"article {issue.slug!r} no longer exists: not sent"
    if not article.is_public(now):
        why = "a draft" if article.draft else f"dated {article.date:%Y-%m-%d %H:%M}, in the future"
        return f"article {issue.slug!r} is now {why}: not sent"
    prepare_article_issue(config, db, article, now=now)
    return ""


def article_topics(config: Config, article: Article) -> tuple[str, ...]:
    """The article's tags that readers may choose as topics (`subscribe.public_tags`)."""
    public = set(clean_tags(config["subscribe.public_tags"]))
    return tuple(tag for tag in clean_tags(article.tags) if tag in public)


def digest_issue(config: Config, articles: Sequence[Article], *, now: datetime) -> Issue:
    """One digest of `articles`, keyed by the author's calendar day so it goes out once a day at most."""
    ordered = tuple(sorted(articles, key=lambda a: a.date, reverse=True))
    day = now.astimezone(config.tz)
    count = len(ordered)
    title = config["publication.title"]
    subject = f"{title}: {count} new article{'s' if count != 1 else ''}"
    return Issue(
        key=f"digest:{day:%Y-%m-%d}",
        kind=IssueKind.DIGEST,
        subject=subject,
        articles=ordered,
        preheader="; ".join(a.title for a in ordered)[:140],
        web_url=config.site_url + "/",
    )


def prepare_digest_issue(config: Config, db: sa.Engine, articles: Sequence[Article], *, now: datetime) -> int:
    issue = digest_issue(config, articles, now=now)
    existing = ledger.find_issue(db, issue.key)
    if existing is not None:
        return existing.id
    return _snapshot(config, db, issue, slug="", now=now, status="scheduled", tag=None)


def _snapshot(
    config: Config, db: sa.Engine, issue: Issue, *, slug: str, now: datetime, status: str, tag: str | None,
    topics: tuple[str, ...] = (),
) -> int:
    rendered = newsletter.render_issue(config, issue, now)
    return ledger.create_issue(
        db,
        key=issue.key,
        kind=issue.kind.value,
        slug=slug,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        tag=tag,
        status=status,
        now=now,
        topics=topics,
    )


def fail_unusable_addresses(
    db: sa.Engine, provider: Provider, *, issue_id: int | None
) -> tuple[str, list[str]] | None:
    """Before a send: fail at once the waiting rows the provider can never deliver (a
    non-ASCII mailbox name on an SMTP server without SMTPUTF8), so that the send reports
    them once, up front, with the reason, instead of one refusal per message.

    Returns the reason and the addresses, or None when there are none. Only a provider
    with a `utf8_mailboxes_refused` check is asked, and only when such rows wait.
    """
    check: Callable[[], str] | None = getattr(provider, "utf8_mailboxes_refused", None)
    if check is None or not ledger.count_non_ascii(db, issue_id=issue_id):
        return None
    reason = check()
    if not reason:
        return None
    failed = ledger.fail_non_ascii(db, issue_id=issue_id, detail=reason)
    return (reason, failed) if failed else None


def deliver_queued(
    config: Config,
    db: sa.Engine,
    *,
    stop: threading.Event,
    worker: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Deliver every due ledger row through the configured provider; returns messages sent."""
    from publisher.delivery import engine, make_provider

    provider = make_provider(config)
    try:
        unusable = fail_unusable_addresses(db, provider, issue_id=None)
        if unusable is not None:
            reason, addresses = unusable
            log.warning(
                "%s address(es) cannot be sent to (%s), marked failed: %s",
                len(addresses), reason, ", ".join(addresses[:5]) + (" ..." if len(addresses) > 5 else ""),
            )
        # The daemon looks again every few seconds, so it never waits here for retries to come due.
        report = engine.deliver(config, db, provider, stop=stop, worker=worker, clock=clock, linger=0.0)
    finally:
        provider.close()
    return int(report.sent)
