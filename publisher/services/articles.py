"""Article actions: list with state, read, write into content/, preview the newsletter.

The Markdown files under `build.content` stay the source of truth: `write_article`
checks the text parses as an article, then writes it beside its target and renames it
into place, so a reader (the build, the daemon) sees the old file or the new one, never
half of either. Errors: ContentError for text that does not parse (naming the line),
NotFound for an unknown slug, Conflict for a slug another file already has.

Writers take turns. Every write holds an exclusive lock (`flock`) on one lock file per
content folder, `.<folder>.lock` beside it, from reading what is on disk to the rename:
a save checks the fingerprint of the file it replaces and replaces it with no other save
in between, and of two saves started from the same text the second is a Conflict, never
a silent overwrite. A new article's file is linked into place only if no file has that
name, so two new articles with one name never overwrite each other either. (An editor
outside publisher takes no lock: the fingerprint is checked again just before the
rename, which narrows its window to that instant.)
"""

from __future__ import annotations

import enum
import errno
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from publisher import content
from publisher.config import Config
from publisher.content.folder_lock import content_lock
from publisher.errors import Conflict, ContentError, InvalidRequest, NotFound, PublisherError
from publisher.mail import newsletter
from publisher.models import Article
from publisher.services.catalogue import catalogue, read_through
from publisher.site import build
from publisher.site.build_cache import ArticleCache
from publisher.store import ledger, publishing, schedules

__all__ = [
    "ArticleState",
    "ArticleView",
    "Preview",
    "TextPreview",
    "Written",
    "article_text",
    "fingerprint",
    "get_article",
    "list_articles",
    "preview",
    "preview_article",
    "preview_text",
    "publish_scheduled",
    "rebuild_site",
    "write_article",
]

PREVIEW_NAME = "Reader"
PREVIEW_EMAIL = "reader@example.com"


class ArticleState(enum.StrEnum):
    DRAFT = "draft"
    """`draft: true` in the front matter: appears nowhere."""
    SCHEDULED = "scheduled"
    """Its newsletter has a pending scheduled send (a draft comes out then), or it is dated
    in the future."""
    PUBLISHED = "published"
    """On the site and in the feeds; its newsletter has not gone out."""
    SENT = "sent"
    """Its newsletter has been sent (or is being sent) to the list."""


@dataclass(frozen=True, slots=True)
class ArticleView:
    """An article, where its file is (relative to the config's folder), and its state."""

    article: Article
    path: str
    state: ArticleState
    issue_id: int | None


@dataclass(frozen=True, slots=True)
class Written:
    """What `write_article` did: the file written and the article as it now parses."""

    path: Path
    article: Article
    created: bool


@dataclass(frozen=True, slots=True)
class Preview:
    """An article's newsletter as a reader would get it (with sample reader values)."""

    slug: str
    subject: str
    html: str
    text: str
    warnings: tuple[str, ...]


def _states(db: Engine, articles: Sequence[Article], now: datetime) -> list[tuple[ArticleState, int | None]]:
    pending = {item.issue_key for item in schedules.pending(db)}
    # One statement for all, or the issue of the one article asked for.
    if len(articles) == 1:
        issue = ledger.find_issue(db, articles[0].id)
        issues = {issue.key: (issue.id, issue.status)} if issue is not None else {}
    else:
        issues = ledger.issue_states(db)
    found: list[tuple[ArticleState, int | None]] = []
    for article in articles:
        issue_id, status = issues.get(article.id, (None, ""))
        if status in ("sending", "done"):
            state = ArticleState.SENT
        elif article.id in pending:
            state = ArticleState.SCHEDULED  # a draft too: it comes out when its send starts
        elif article.draft:
            state = ArticleState.DRAFT
        elif article.date > now:
            state = ArticleState.SCHEDULED
        else:
            state = ArticleState.PUBLISHED
        found.append((state, issue_id))
    return found


def list_articles(config: Config, db: Engine, *, now: datetime) -> list[ArticleView]:
    """Every article under content/, newest first, drafts included, each with its state.

    A file that does not parse raises ContentError naming it (`publisher check` lists all).
    """
    found = catalogue(config)  # without their HTML: the list shows none
    if found.problems:
        raise found.problems[0]
    articles = list(found.articles)
    return [
        ArticleView(article=a, path=a.source, state=state, issue_id=issue_id)
        for a, (state, issue_id) in zip(articles, _states(db, articles, now), strict=True)
    ]


def get_article(config: Config, db: Engine, slug: str, *, now: datetime) -> ArticleView:
    """The article with this slug (drafts too), with its state; NotFound otherwise."""
    found = catalogue(config)
    for article in found.articles:
        if article.slug == slug:
            ((state, issue_id),) = _states(db, [article], now)
            return ArticleView(article=found.whole(article), path=article.source, state=state, issue_id=issue_id)
    raise NotFound(f"no article with slug {slug!r}")


def _file_of(config: Config, article: Article) -> Path:
    path = Path(article.source)
    return path if path.is_absolute() else config.root / path


def fingerprint(text: str) -> str:
    """What `write_article(expected=...)` compares: the SHA-256 of an article's text."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def article_text(config: Config, view: ArticleView) -> str:
    """The article's file as it is on disk now (front matter and body), never read through
    a symbolic link (`content.read_content`): the editor shows only the content folder."""
    path = _file_of(config, view.article)
    return content.decode_article(content.read_content(path, view.path, config), view.path)


def write_article(
    config: Config, text: str, *, now: datetime, slug: str | None = None, expected: str | None = None,
    db: Engine | None = None,
) -> Written:
    """Write a Markdown article (front matter and body) into content/.

    Without `slug` it is a new article, named `YYYY-MM-DD-<slug>.md` after its date and
    slug (from `slug:` or the title); Conflict if any article already has that slug.
    With `slug`, the article of that slug is replaced in its own file; the text must keep
    the slug (InvalidRequest otherwise: a new slug would change its address and its id).
    The text is parsed first: nothing is written unless it is a valid article.
    With `expected` (the `fingerprint` of the text the writer started from), a file
    changed on disk since is a Conflict and is left as it is.

    Saving never sends. With `db` (the desk and the API pass it), an article that this
    write puts on the site is recorded as noticed, waiting for the author, before its file
    lands: the daemon's policy (which may mail new files at once) never applies to it, and
    its newsletter goes out only when the author sends or schedules it.
    """
    folder = config.path_of("build.content")
    with content_lock(folder):
        by_slug = {a.slug: a for a in catalogue(config).articles}
        if slug is not None:
            current = by_slug.get(slug)
            if current is None:
                raise NotFound(f"no article with slug {slug!r}")
            target = _file_of(config, current)
            if expected is not None:
                _check_unchanged(target, expected)
            article = content.parse_article(text, source=str(target), config=config)
            if article.slug != slug:
                raise InvalidRequest(
                    f"the text gives slug {article.slug!r}, but it replaces {slug!r}: keep the "
                    f"slug (add 'slug: {slug}' to the front matter), or create a new article"
                )
            _claim_for_author(db, article, now)
            _replace(target, text, expected=expected)
            return Written(path=target, article=article, created=False)
        # No file name yet: the slug comes from `slug:` or the title alone.
        draft = content.parse_article(text, source="(new article)", config=config)
        if draft.slug in by_slug:
            # The desk's editor shows this beside the title field (it looks for these first words).
            raise Conflict(
                f"An article at this address already exists ({draft.slug}): change the title or the address (slug)."
            )
        target = folder / f"{draft.date.astimezone(config.tz):%Y-%m-%d}-{draft.slug}.md"
        article = content.parse_article(text, source=str(target), config=config)
        _claim_for_author(db, article, now)
        _create(target, text)
        return Written(path=target, article=article, created=True)


def publish_scheduled(config: Config, slug: str, *, at: datetime, now: datetime) -> Article:
    """Put a scheduled article on the site, as its scheduled send starts.

    A draft loses its `draft:` line and is dated `at` (to the minute, in the publication's
    zone), the moment it came out; an article dated after `at` is dated `at` too. Every
    other line of the file stays as the author wrote it. An article already public is left
    alone. The write takes the content folder's lock like any save; ContentError if the
    result would not be public.
    """
    folder = config.path_of("build.content")
    with content_lock(folder):
        found = catalogue(config)
        article = next((a for a in found.articles if a.slug == slug), None)
        if article is None:
            raise NotFound(f"no article with slug {slug!r}")
        if article.is_public(now):
            return found.whole(article)
        target = _file_of(config, article)
        before = content.decode_article(content.read_content(target, article.source, config), article.source)
        dated = (at if article.draft else min(article.date, at)).astimezone(config.tz)
        # An `updated:` older than the day a draft comes out (a draft moved in) is no revision since.
        stale = article.draft and article.updated is not None and article.updated < dated
        after = _published_text(before, f"{dated:%Y-%m-%d %H:%M}", drop_updated=stale)
        published = content.parse_article(after, source=str(target), config=config)
        if not published.is_public(now):
            raise ContentError(f"{target}: could not be put on the site for its scheduled send")
        _replace(target, after, expected=fingerprint(before))
        return published


def _published_text(text: str, date: str, *, drop_updated: bool = False) -> str:
    """`text` with its front matter's `draft:` line (and `updated:`, if `drop_updated`) dropped
    and its `date:` set to `date`."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return f"---\ndate: {date}\n---\n\n{text}"
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].rstrip() == "---")
    except StopIteration:
        return text
    dropped = ("draft:", "updated:") if drop_updated else ("draft:",)
    front = [line for line in lines[1:end] if not line.startswith(dropped)]
    dated = [f"date: {date}" if line.startswith("date:") else line for line in front]
    if not any(line.startswith("date:") for line in front):  # not `dated == front`: the same minute is a date too
        dated.append(f"date: {date}")
    return "\n".join([lines[0], *dated, *lines[end:]])


def rebuild_site(config: Config, *, now: datetime) -> None:
    """Build the site from content/ as it is now, rendering only what changed (the build
    cache): for a face that just put an article on the site without a daemon to notice."""
    cache = ArticleCache(config)
    try:
        articles, problems = read_through(config, cache)
        if problems:
            raise problems[0]
        build.build_site(config, articles, now, cache=cache)
    finally:
        cache.save()


def _claim_for_author(db: Engine | None, article: Article, now: datetime) -> None:
    """Mark an article the author writes as noticed, so that no policy mails it: it waits.

    A `send_at:` line in its front matter is the author's own schedule and is left to the
    daemon, which files it as a scheduled send the moment it notices the article."""
    if db is not None and not article.draft and article.send_at is None:
        publishing.mark_seen(
            db, article_id=article.id, slug=article.slug, origin=article.source, handled="wait", now=now
        )


def _check_unchanged(target: Path, expected: str) -> None:
    try:
        on_disk = _read_plain(target).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Conflict(f"{target.name} cannot be read any more ({exc}); nothing was written") from exc
    if not hmac.compare_digest(fingerprint(on_disk), expected):
        raise Conflict(f"{target.name} changed on disk since it was opened; nothing was written")


def _temp_beside(target: Path, text: str, *, mode: int | None = None) -> Path:
    """`text` in a new file beside `target`, flushed to disk, for a rename or link into place.

    The file gets `mode` (the mode of the file it replaces), or else 0666 less the umask,
    like any file the author creates: a save never makes an article private or public.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(100):
            name = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(errno.EEXIST, "no free temporary name", str(target.parent))
    except OSError as exc:
        raise PublisherError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        name.unlink(missing_ok=True)
        raise
    return name


def _read_plain(target: Path) -> bytes:
    """A file's bytes, never through a symbolic link (OSError for one, or for a non-file)."""
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{target.name} is not a regular file")
        return handle.read()


def _replace(target: Path, text: str, *, expected: str | None = None) -> None:
    """Write beside `target` and rename over it: readers see the old file or the new one,
    with the mode it had. With `expected`, the file on disk must still have that fingerprint
    at the last moment. A link in its place is refused, never written through or replaced."""
    try:
        found = os.lstat(target)
    except OSError as exc:
        raise PublisherError(f"cannot write {target}: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(found.st_mode):
        raise ContentError(
            f"{target.name} is a symbolic link: publisher follows no links in the content folder, "
            "so nothing was written; replace it with the file itself"
        )
    temp = _temp_beside(target, text, mode=stat.S_IMODE(found.st_mode))
    try:
        if expected is not None:
            _check_unchanged(target, expected)
        temp.replace(target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _create(target: Path, text: str) -> None:
    """Put a new file at `target`, whole, or Conflict if a file of that name exists."""
    temp = _temp_beside(target, text)
    try:
        os.link(temp, target)
    except FileExistsError as exc:
        raise Conflict(f"{target.name} exists already in {target.parent}; give the article another slug") from exc
    except OSError as exc:
        raise PublisherError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        temp.unlink(missing_ok=True)


def preview(config: Config, slug: str, *, now: datetime) -> Preview:
    """The newsletter of the article `slug` (drafts too), rendered as it would be sent.

    Per-reader values are sample ones (a reader called "Reader"); nothing is stored.
    """
    found = catalogue(config)
    article = next((a for a in found.articles if a.slug == slug), None)
    if article is None:
        raise NotFound(f"no article with slug {slug!r}")
    return _preview_of(config, found.whole(article), now)


def preview_article(config: Config, article: Article, *, now: datetime) -> Preview:
    """An article's newsletter as a reader gets it, with the sample reader's values."""
    return _preview_of(config, article, now)


def _preview_of(config: Config, article: Article, now: datetime) -> Preview:
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)
    template = newsletter.MessageTemplate.from_rendered(config, rendered)
    sample = newsletter.Recipient(
        delivery_id=None,
        email=PREVIEW_EMAIL,
        name=PREVIEW_NAME,
        unsubscribe_url=config.public_url + build.PREVIEW_UNSUBSCRIBE,
        message_id="",
        manage_url=config.public_url + build.PREVIEW_MANAGE,
    )
    html, text = template.parts(sample)
    return Preview(slug=article.slug, subject=rendered.subject, html=html, text=text, warnings=rendered.warnings)


@dataclass(frozen=True, slots=True)
class TextPreview:
    """An article not yet saved, as its newsletter and its web page would look."""

    article: Article
    preview: Preview
    web_html: str


def preview_text(config: Config, text: str, *, now: datetime) -> TextPreview:
    """Render an article's text (front matter and body) as newsletter and web page, unsaved.

    ContentError, naming the line, when the text does not parse. A draft or a future
    date is shown as if published now.
    """
    article = content.parse_article(text, source="(the editor)", config=config)
    shown = replace(article, draft=False, date=min(article.date, now))
    site = build.render_site(config, [shown], now)
    page = site.files.get(f"{shown.slug}/index.html", b"").decode("utf-8")
    return TextPreview(article=article, preview=_preview_of(config, article, now), web_html=page)
