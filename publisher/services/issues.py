"""Issue actions: dry run, test copy, send now, cancel, status (scheduling is
`services.scheduling`).

An issue is an article's newsletter, rendered once and frozen in the ledger. `send_now`
(and `scheduling.schedule_send`) freeze it and queue or schedule it; the rows are delivered by
whoever runs the delivery engine (the CLI in the foreground, `publisher serve` in the
background), so nothing here waits for a provider except `test_send`.

Errors: NotFound for an unknown or unpublished slug, issue or schedule; InvalidRequest
for a send time in the past; ConfigError for an unknown zone or a time the clocks skip;
Conflict for a schedule that can no longer be cancelled; DeliveryError when a test copy
is refused.

An article moved in from another service that mailed it there (`migration.moved_in`) is
not mailed again by surprise: `plan_send` warns (`SendPlan.mailed_there`), and `send_now`
and `scheduling.schedule_send` refuse it (InvalidRequest, saying when it was mailed and to
how many readers it would go again) unless the author says `again`. Once its issue is in
the ledger here, the author has chosen, and later sends reach only new readers.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from publisher import content
from publisher.config import Config, provider_said
from publisher.delivery.base import Provider, make_provider
from publisher.delivery.sending import (
    article_topics,
    find_article,
    prepare_article_issue,
    prepare_digest_issue,
    require_postal_address,
)
from publisher.errors import InvalidRequest, MailedAlready, NotFound, PermanentFailure
from publisher.mail import newsletter, preflight, tokens
from publisher.models import Article, Outcome
from publisher.services import articles, segments
from publisher.services.catalogue import catalogue
from publisher.services.complaints import ComplaintRate, complaint_rate, stop_for_complaints
from publisher.services.migration import MovedIn, moved_in
from publisher.services.stats import IssueFailures, issue_failures, issue_status
from publisher.store import ledger, publishing, schedules
from publisher.store import segments as segment_store
from publisher.store.issues import IssueStatus
from publisher.store.schedules import LOCAL, Schedule
from publisher.store.subscribers import normalize_email

__all__ = [
    "LOCAL",
    "TEST_PREFIX",
    "Cancelled",
    "IssueFailures",
    "IssueStatus",
    "Queued",
    "Schedule",
    "SendPlan",
    "article_slug",
    "blocking_problems",
    "cancel_issue",
    "create_issue",
    "get_issue",
    "issue_failures",
    "issue_status",
    "mailed_there",
    "plan_send",
    "provider_label",
    "published_article",
    "refuse_mailed_there",
    "retry_failed",
    "send_issue",
    "send_now",
    "send_secret",
    "test_send",
]

log = logging.getLogger(__name__)

MAX_TEST_ADDRESSES = 10
TEST_PREFIX = "[Test] "
"""Put before a test copy's subject, so that it is never taken for the real issue."""


@dataclass(frozen=True, slots=True)
class SendPlan:
    """What a send of an article would do now: nothing is written to make it."""

    article: Article
    subject: str
    html_bytes: int
    text_bytes: int
    warnings: tuple[str, ...]
    recipients: int
    """New recipients: readers who already had it (an earlier send) are not counted."""
    issue_id: int | None
    """The issue already in the ledger for this article, if it was sent or scheduled before."""
    frozen: bool = False
    """Its first copies have left: a send now delivers what they got, not the article as it is."""
    publishes: bool = False
    """The article is a draft (or dated later): a send now also puts it on the site."""
    problems: tuple[str, ...] = ()
    """Failing checks that stop a send (`blocking_problems`): a send now is refused until fixed."""
    provider: str = ""
    """How the mail leaves, as a confirmation names it ("Postmark")."""
    active: int = 0
    """Active readers (of the tag): those who had it, those it reaches, and those who chose
    otherwise (the digest only, other topics) add up to this."""
    had_it: int = 0
    """Active readers (of the tag) who had it already."""
    complaints: ComplaintRate | None = None
    """The complaint rate over the last 30 days: at "stop", a send needs an owner's override."""
    mailed_there: str = ""
    """The service it was moved in from mailed it already (`mailed_there`): a send is refused
    unless the author says `again`. Also the first of `warnings`."""

    @property
    def chose_otherwise(self) -> int:
        """Active readers whose own choices leave this article out (the digest only, other topics)."""
        return max(0, self.active - self.had_it - self.recipients)




@dataclass(frozen=True, slots=True)
class Queued:
    """An issue frozen in the ledger with its new recipients queued for delivery."""

    issue_id: int
    article: Article
    added: int


def send_secret(config: Config) -> str:
    """The key that signs unsubscribe links; ConfigError when a real provider has none."""
    return tokens.resolve_secret(config, real_provider=config["delivery.provider"] != "maildir")


def published_article(config: Config, slug: str, *, now: datetime) -> Article:
    """The published article `slug`; NotFound (with the closest slugs) for a draft or unknown one."""
    found = catalogue(config)
    return found.whole(find_article(found.parsed(), slug, now=now))


def plan_send(
    config: Config, db: Engine, slug: str, *, now: datetime, tag: str | None = None, segment: str | None = None
) -> SendPlan:
    """What a send would deliver and to how many (a dry run): the article rendered as it is
    now, or, once the issue's first copies have left, the frozen snapshot they got. A
    draft may be planned too: sending it puts it on the site first. With `segment` (a
    saved segment's name), its readers only."""
    found = catalogue(config)
    article = found.whole(find_article(found.articles, slug, now=now, unpublished=""))
    existing = ledger.find_issue(db, article.id)
    where = segments.audience(db, segment, now=now)[1] if segment else ()
    active, had_it, count = ledger.count_audience(
        db, issue_id=existing.id if existing else None, tag=tag, kind="article",
        topics=article_topics(config, article), digest=bool(config["schedule.digest"]), where=where,
    )
    warnings: tuple[str, ...] = ()
    mailed = mailed_there(config, article, readers=count) if existing is None else ""
    if existing is not None and ledger.is_frozen(db, existing.id):
        subject, html, text, frozen = existing.subject, existing.html, existing.text, True
    else:
        rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)
        subject, html, text, warnings, frozen = (
            rendered.subject, rendered.html, rendered.text, rendered.warnings, False
        )
    return SendPlan(
        article=article,
        subject=subject,
        html_bytes=len(html.encode()),
        text_bytes=len(text.encode()),
        warnings=(mailed, *warnings) if mailed else warnings,
        recipients=count,
        active=active,
        had_it=had_it,
        issue_id=existing.id if existing else None,
        frozen=frozen,
        publishes=not article.is_public(now),
        problems=() if frozen else tuple(blocking_problems(config, article, now=now)),
        provider=provider_label(config),
        complaints=complaint_rate(db, now=now),
        mailed_there=mailed,
    )


def test_send(
    config: Config,
    slug: str,
    addresses: Sequence[str],
    *,
    now: datetime,
    provider_factory: Callable[[Config], Provider] = make_provider,
    text: str | None = None,
) -> Article:
    """Send one copy of the article's newsletter to each address; the ledger is not touched.

    Drafts and future articles may be test-sent (that is what a test copy is for); the
    subject starts with "[Test] ". The unsubscribe link in a test copy names nobody. With
    `text` (an article file's text, as the editor has it, saved or not) the copy is made
    from that text instead of the file; it must keep the slug (InvalidRequest), and
    ContentError names the line when it does not parse. Raises SubscriberError for a bad
    address, PermanentFailure when the provider refuses a copy.
    """
    if not addresses or len(addresses) > MAX_TEST_ADDRESSES:
        raise InvalidRequest(f"give 1 to {MAX_TEST_ADDRESSES} addresses for a test copy, got {len(addresses)}")
    checked = [normalize_email(address) for address in addresses]
    if text is not None:
        article = content.parse_article(text, source="(the editor)", config=config)
        if article.slug != slug:
            raise InvalidRequest(f"the text gives slug {article.slug!r}, but the test copy is for {slug!r}")
    else:
        found = catalogue(config)
        article = found.whole(find_article(found.articles, slug, now=now, unpublished=""))
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)
    rendered = dataclasses.replace(rendered, subject=TEST_PREFIX + rendered.subject)
    template = newsletter.MessageTemplate.from_rendered(config, rendered)
    secret = send_secret(config)
    domain = template.sender_address.rpartition("@")[2] or "localhost"
    provider = provider_factory(config)
    try:
        for address in checked:
            # A fresh key no subscriber holds: the links show their pages but reach nobody.
            nobody = secrets.token_hex(16)
            recipient = newsletter.Recipient(
                delivery_id=None,
                email=address,
                name="",
                unsubscribe_url=tokens.unsubscribe_url(config, secret, nobody),
                message_id=make_msgid(idstring="test", domain=domain),
                manage_url=tokens.manage_url(config, secret, nobody),
            )
            (result,) = provider.send(template, [recipient], now=now)
            if result.outcome is not Outcome.SENT:
                raise PermanentFailure(
                    f"the test copy to {address} was not sent ({result.outcome}): {result.detail}"
                )
    finally:
        provider.close()
    return article


def send_now(
    config: Config, db: Engine, slug: str, *, now: datetime, tag: str | None = None,
    segment: str | None = None,
    despite_complaints: bool = False, who: str = "", held_for: Callable[[int], None] | None = None,
    again: bool = False,
) -> Queued:
    """Freeze the article's newsletter in the ledger and queue it for every active subscriber
    (of `tag`) who has not had it: exactly once per reader, however often it is called.

    Returns at once; the rows are sent by the delivery engine. Raises ConfigError first
    if unsubscribe links cannot be signed or a real provider lacks the postal address, and
    InvalidRequest if a check that stops a send fails, or if the complaint rate over 30
    days stops sends (`complaints.stop_for_complaints`) and `despite_complaints` (an
    owner's knowing choice, recorded with `who`) is not given, so nothing is queued that
    could not go out. A draft (or an article dated later) is put on the site first, dated now.
    With `segment` (a saved segment's name; NotFound lists them), its active readers only:
    the copies queued are its count at this instant, recorded on the issue.
    With `held_for` (a subject test), it is called with the issue id before any row is
    written, and the rows are written held, for it to queue.
    An article the service it was moved in from mailed already is refused (InvalidRequest,
    naming when and to how many) unless `again`: the author's explicit word.
    """
    if segment and tag:
        raise InvalidRequest("give a tag or a segment, not both (a segment can hold a tag condition)")
    found = catalogue(config)
    article = found.whole(find_article(found.articles, slug, now=now, unpublished=""))
    send_secret(config)
    require_postal_address(config)
    chosen, where = segments.audience(db, segment, now=now) if segment else (None, ())
    existing = ledger.find_issue(db, article.id)
    if existing is None and not again:
        refuse_mailed_there(config, db, article, tag=tag, where=where, how=f"publisher send {article.slug} --again")
    if existing is None or not ledger.is_frozen(db, existing.id):
        problems = blocking_problems(config, article, now=now)
        if problems:
            raise InvalidRequest("not sent: fix these first. " + " ".join(problems))
    stop = stop_for_complaints(db, now=now, despite=despite_complaints)
    publishing.mark_seen(
        db, article_id=article.id, slug=article.slug, origin=article.source, handled="sent", now=now
    )
    if not article.is_public(now):
        article = articles.publish_scheduled(config, article.slug, at=now, now=now)
    issue_id = prepare_article_issue(config, db, article, now=now, status="sending", tag=tag)
    stop.record(db, issue_id=issue_id, who=who, now=now)
    segment_store.record_on_issue(db, issue_id, chosen)
    if held_for is not None:
        held_for(issue_id)
    added = ledger.enqueue(
        db, issue_id, now=now, tz_of_author=config.tz, where=where, tag=tag, digest=bool(config["schedule.digest"]),
        held=held_for is not None,
    )
    if chosen is not None:
        segment_store.record_count(db, issue_id, added)
    return Queued(issue_id=issue_id, article=article, added=added)


def _moved_in(config: Config, article: Article) -> MovedIn | None:
    """What the article's file says of where it was moved in from (None: written here)."""
    if not article.source or "://" in article.source:
        return None
    path = Path(article.source)
    try:
        text = (path if path.is_absolute() else config.root / path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return moved_in(text, draft=article.draft)


def mailed_there(config: Config, article: Article, *, readers: int) -> str:
    """A sentence when the service the article was moved in from mailed it to its list
    already (or may have: moved in before that was recorded), naming the service, the day
    and the `readers` a send now would mail it to again; "" otherwise."""
    origin = _moved_in(config, article)
    if origin is None or origin.mailed is False:
        return ""
    local = article.date.astimezone(config.tz)
    day = f"{local.day} {local:%B %Y}"
    if origin.mailed:
        return (
            f"This article was moved in from {origin.service}, where it was mailed on {day}; "
            f"sending it mails it again to {readers:,} reader(s)."
        )
    return (
        f"This article was moved in from {origin.service}, where it was published on {day} and "
        f"probably mailed (the move did not record it); sending it may mail it again to {readers:,} reader(s)."
    )


def refuse_mailed_there(
    config: Config, db: Engine, article: Article, *, tag: str | None, where: Sequence[Any], how: str
) -> None:
    """InvalidRequest when the article was mailed where it was moved in from (`mailed_there`);
    `how` is the way to send it anyway that the message offers."""
    origin = _moved_in(config, article)
    if origin is None or origin.mailed is False:
        return
    _, _, count = ledger.count_audience(
        db, issue_id=None, tag=tag, kind="article", topics=article_topics(config, article),
        digest=bool(config["schedule.digest"]), where=where,
    )
    raise MailedAlready(f"{mailed_there(config, article, readers=count)} To send it anyway: {how}")


def blocking_problems(config: Config, article: Article, *, now: datetime) -> list[str]:
    """What must be fixed before this article's newsletter may go out: the checks before
    sending that stop a send (see `preflight.Check.blocking`), each as one sentence.

    Run when a send is scheduled and again when it starts; SpamAssassin and the checks
    that wait on other sites are left to the author's own "check" in the desk.
    """
    shown = articles.preview_article(config, article, now=now)
    found, _ = preflight.run_checks(
        config, article, subject=shown.subject, html=shown.html, text=shown.text, spam=False
    )
    return [f"{check.name}: {check.detail}" for check in found if check.stops_send]










def provider_label(config: Config) -> str:
    """How a confirmation names the way mail leaves: "Postmark", "your mail server (smtp.example.org)"."""
    name = str(config["delivery.provider"])
    if name == "pool":  # "Postmark, then your mail server"
        members = sorted(config.pool, key=lambda m: m.priority)
        return ", then ".join(provider_said(m.provider) for m in members)
    label = provider_said(name)
    if name == "smtp":
        label += f" ({config['delivery.smtp.host']})"
    return label


















def get_issue(db: Engine, issue_id: int) -> IssueStatus:
    """One issue's delivery counts; NotFound for an unknown id."""
    (line,) = ledger.status(db, issue_id)
    return line


def create_issue(
    config: Config, db: Engine, *, now: datetime, article: str | None = None, digest: Sequence[str] = ()
) -> IssueStatus:
    """Freeze an issue in the ledger without sending it: the newsletter of the published
    `article`, or a digest of the published articles in `digest`. Creating it again
    returns the one already there (an issue is rendered once)."""
    if (article is None) == (not digest):
        raise InvalidRequest("give either an article's slug or the slugs of a digest's articles, not both")
    if article is not None:
        issue_id = prepare_article_issue(config, db, published_article(config, article, now=now), now=now)
    else:
        found = catalogue(config)
        chosen = [found.whole(find_article(found.parsed(), slug, now=now)) for slug in dict.fromkeys(digest)]
        issue_id = prepare_digest_issue(config, db, chosen, now=now)
    return get_issue(db, issue_id)


def send_issue(
    config: Config, db: Engine, issue_id: int, *, now: datetime, despite_complaints: bool = False, who: str = "",
    segment: str | None = None, again: bool = False,
) -> int:
    """Queue an issue already in the ledger for every active subscriber (of its tag) who
    has not had it; returns the number of rows added. Exactly once per reader. The
    complaint rate stops it as it stops `send_now` (InvalidRequest), unless `despite_complaints`.
    With `segment` (a saved segment's name) its readers only, recorded on the issue;
    without, an issue scheduled to a segment goes to that segment (InvalidRequest if it
    was deleted). The first send of an article moved in from a service that mailed it
    there is refused as `send_now` refuses it, unless `again`."""
    send_secret(config)
    line = get_issue(db, issue_id)
    if not again and line.slug and line.total == 0:
        found = catalogue(config)
        article = next((found.whole(a) for a in found.articles if a.slug == line.slug), None)
        if article is not None:
            refuse_mailed_there(
                config, db, article, tag=None, where=segments.audience(db, segment, now=now)[1] if segment else (),
                how=f"publisher send {article.slug} --again",
            )
    if segment:
        segment_store.record_on_issue(db, issue_id, segments.find_segment(db, segment))
    recorded, where = segments.issue_audience(db, issue_id, now=now)
    stop_for_complaints(db, now=now, despite=despite_complaints).record(db, issue_id=issue_id, who=who, now=now)
    added = ledger.enqueue(
        db, get_issue(db, issue_id).issue_id, now=now, tz_of_author=config.tz, where=where,
        digest=bool(config["schedule.digest"]),
    )
    if recorded is not None:
        segment_store.record_count(db, issue_id, added)
    return added


def article_slug(db: Engine, issue_id: int) -> str:
    """The slug of the article an issue sends; InvalidRequest for a digest."""
    snapshot = ledger.get_issue(db, issue_id)
    if not snapshot.slug:
        raise InvalidRequest(f"issue {issue_id} is a digest: only an article's issue can be test-sent or scheduled")
    return snapshot.slug


@dataclass(frozen=True, slots=True)
class Cancelled:
    schedules: tuple[Schedule, ...]
    rows: int
    """Queued copies taken back (copies already in flight still go out)."""


def cancel_issue(db: Engine, issue_id: int, *, now: datetime) -> Cancelled:
    """Cancel what is still to come of an issue: its pending schedules and its queued copies."""
    get_issue(db, issue_id)
    done = []
    for item in schedules.pending(db):
        if item.issue_id == issue_id:
            try:
                done.append(schedules.cancel(db, item.id))
            except NotFound:
                continue  # claimed meanwhile: its rows are taken back below
    rows = ledger.cancel_queued(db, issue_id, now=now)
    return Cancelled(schedules=tuple(done), rows=rows)


def retry_failed(db: Engine, issue_id: int, *, now: datetime) -> int:
    """Queue the issue's failed copies again (the delivery engine sends them); how many."""
    return ledger.retry_failed(db, issue_id, now=now)
