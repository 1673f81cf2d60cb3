"""Newsletter issues: which articles go out, and their rendering, once per issue.

Jinja and premailer run here and nowhere per recipient. Values that differ per reader
(name, address, unsubscribe link, "manage your subscription" link) are placeholder tokens in the rendered output;
`MessageTemplate` (in `publisher.mail.mime`) splices them into pre-encoded bytes.
"""

from __future__ import annotations

import functools
import logging
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import jinja2
from markupsafe import Markup

from publisher.config import Config
from publisher.content import i18n
from publisher.content.templates import template_environment, text_direction
from publisher.errors import TemplateError
from publisher.mail.mime import (
    HTML_PLACEHOLDERS,
    PLACEHOLDERS,
    TEXT_PLACEHOLDERS,
    DkimSigner,
    MessageTemplate,
    Placeholders,
    Recipient,
    clean_header_text,
    message_id_for,
)
from publisher.models import Article, Issue, IssueKind, RenderedIssue, split_person
from publisher.numbers import plain_int

__all__ = [
    "CONTENT_WIDTH",
    "HTML_PLACEHOLDERS",
    "PLACEHOLDERS",
    "TEXT_PLACEHOLDERS",
    "DkimSigner",
    "MessageTemplate",
    "Recipient",
    "archive_url",
    "html_to_text",
    "inline_css",
    "issue_for_article",
    "issue_for_digest",
    "message_id_for",
    "render_confirmation",
    "render_issue",
    "shows_update",
]

EMAIL_WIDTH: Final = 600
CONTENT_WIDTH: Final = 552
"""Width of the article column inside the 600 px layout (24 px padding each side)."""

_TEMPLATES: Final[Mapping[IssueKind, tuple[str, str]]] = {
    IssueKind.ARTICLE: ("email/issue.html", "email/issue.txt"),
    IssueKind.DIGEST: ("email/digest.html", "email/digest.txt"),
}
_CONFIRM_TEMPLATES: Final = ("email/confirm.html", "email/confirm.txt")
_STYLESHEET: Final = "email/style.css"
_BACKREFS: Final = frozenset({"↩", "↩︎", "↑", "^"})


def archive_url(config: Config, slug: str) -> str:
    """The article's page in the web archive: the "view in browser" link."""
    return f"{config.site_url}/{slug}/"


def _fill(template: str, **values: str) -> str:
    # str.format would let a config value reach attributes ("{title.__class__}").
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def issue_for_article(config: Config, article: Article) -> Issue:
    """The issue that sends one article, keyed by the article's stable id."""
    subject = _fill(
        str(config["newsletter.subject"]),
        title=article.title,
        publication=str(config["publication.title"]),
    )
    return Issue(
        key=article.id,
        kind=IssueKind.ARTICLE,
        subject=clean_header_text(subject),
        articles=(article,),
        preheader=article.summary,
        web_url=archive_url(config, article.slug),
    )


def issue_for_digest(config: Config, articles: Sequence[Article], now: datetime) -> Issue:
    """A digest of `articles` (newest first), keyed by the day it is made in the author's zone."""
    if not articles:
        raise ValueError("a digest needs at least one article")
    day = now.astimezone(config.tz).date()
    count = len(articles)
    words = i18n.translations(str(config["publication.language"]))
    title = words.ngettext("%(count)d new article", "%(count)d new articles", count) % {"count": count}
    subject = _fill(
        str(config["newsletter.subject"]), title=title, publication=str(config["publication.title"])
    )
    return Issue(
        key=f"digest:{day.isoformat()}",
        kind=IssueKind.DIGEST,
        subject=clean_header_text(subject),
        articles=tuple(articles),
        preheader=" · ".join(a.title for a in articles),
        web_url=f"{config.site_url}/",
    )


@functools.cache
def _text_converter() -> type[Any]:
    """markdownify's converter, made to measure on first use (bs4 is slow to import, and a
    sender that only sends stored issues never needs it)."""
    from markdownify import MarkdownConverter

    class TextConverter(MarkdownConverter):
        """Markdown-flavoured plain text: links as "text (url)", no escaping, no footnote arrows."""

        def convert_a(self, el: Any, text: str, parent_tags: Any) -> str:
            href = str(el.get("href") or "")
            label = text.strip()
            if href.startswith("#"):
                return "" if label in _BACKREFS else label
            if not href or href in (label, f"mailto:{label}"):
                return label or href
            return f"{label} ({href})" if label else href

        def convert_img(self, el: Any, text: str, parent_tags: Any) -> str:
            alt = str(el.get("alt") or "").strip()
            return f"[Image: {alt}]" if alt else ""

    return TextConverter


def html_to_text(html: str) -> str:
    """Readable plain text for the text/plain part, every link kept with its address."""
    converter = _text_converter()(
        heading_style="underlined",
        bullets="-",
        escape_asterisks=False,
        escape_underscores=False,
        escape_misc=False,
        wrap=True,
        wrap_width=72,
    )
    text = _wrap_items(converter.convert(html))
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


_ITEM_RE: Final = re.compile(r"^(\s*(?:[-*+]|\d+\.)\s+|\s*>\s?)")


def _wrap_items(text: str, width: int = 72) -> str:
    """Wrap list items and quotes (markdownify wraps paragraphs only) with hanging indents."""
    lines: list[str] = []
    fenced = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = _ITEM_RE.match(line)
        if fenced or len(line) <= width or match is None:
            lines.append(line)
            continue
        prefix = match.group(1)
        follow = prefix if prefix.strip() == ">" else " " * len(prefix)
        lines.append(
            textwrap.fill(
                line[len(prefix):],
                width=width,
                initial_indent=prefix,
                subsequent_indent=follow,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)


def _email_ready(html: str) -> str:
    """Article HTML fitted to the email column: every image gets a width and an alt."""
    from bs4 import BeautifulSoup, Tag

    soup = BeautifulSoup(html, "html.parser")
    # Footnote back-links jump within a web page; most mail clients cannot follow them.
    for link in soup.find_all("a"):
        if (
            isinstance(link, Tag)
            and link.get_text().strip() in _BACKREFS
            and str(link.get("href") or "").startswith("#")
        ):
            link.decompose()
    for img in soup.find_all("img"):
        if not isinstance(img, Tag):
            continue
        width = str(img.get("width") or "")
        wanted = plain_int(width) or 0
        img["width"] = str(min(wanted, CONTENT_WIDTH) if wanted else CONTENT_WIDTH)
        # A fixed height with a narrowed width would squash the picture.
        for attribute in ("height", "srcset", "sizes"):
            if attribute in img.attrs:
                del img[attribute]
        if not img.get("alt"):
            img["alt"] = ""
        classes = img.get_attribute_list("class")
        img["class"] = " ".join([*(c for c in classes if c and c != "fluid"), "fluid"])
    return str(soup)


@dataclass(frozen=True, slots=True)
class _ArticleView:
    """What templates see of an article: display values, email-ready HTML, plain text."""

    title: str
    url: str
    date: datetime
    date_text: str
    updated_text: str
    author: str
    summary: str
    tags: tuple[str, ...]
    image: str
    image_alt: str
    html: Markup
    text: str


def shows_update(article: Article, config: Config) -> bool:
    """Whether "Updated <date>" is worth a line: only when it falls on a later day.

    A fix made on the publication day (in the publication's zone) is not news.
    """
    if article.updated is None:
        return False
    return article.updated.astimezone(config.tz).date() > article.date.astimezone(config.tz).date()


def _date_text(moment: datetime, config: Config) -> str:
    return i18n.format_date(moment, str(config["publication.language"]), config.tz)


def _article_view(config: Config, article: Article, *, body: bool) -> _ArticleView:
    updated = article.updated if shows_update(article, config) else None
    return _ArticleView(
        title=article.title,
        url=archive_url(config, article.slug),
        date=article.date,
        date_text=_date_text(article.date, config),
        updated_text=_date_text(updated, config) if updated else "",
        author=split_person(article.author or str(config["publication.author"]))[0],
        summary=article.summary,
        tags=article.tags,
        image=urljoin(config.site_url + "/", article.image) if article.image else "",
        image_alt=article.image_alt,
        # Article HTML is sanitised by content/sanitize (nh3 allow-list) before it gets here.
        html=Markup(_email_ready(article.html)) if body else Markup(""),  # noqa: S704
        text=html_to_text(article.html) if body else "",
    )


def _publication(config: Config) -> dict[str, str]:
    logo = str(config["publication.logo"])
    return {
        "title": str(config["publication.title"]),
        "url": config.site_url + "/",
        "description": str(config["publication.description"]),
        "author": str(config["publication.author"]),
        "postal_address": str(config["publication.postal_address"]),
        "language": str(config["publication.language"]),
        "logo": urljoin(config.site_url + "/", logo) if logo else "",
    }


def _environment(config: Config) -> jinja2.Environment:
    # Autoescape by extension only: .html escapes, .txt and .css are taken as written.
    return template_environment(config, autoescape=False)


def _render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"template {name} not found in the publication's templates folder or the defaults"
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{name}: {exc.message or exc}. Fix the template and run again.") from exc


def _stylesheet(env: jinja2.Environment, config: Config) -> str:
    """The email stylesheet with its sides set for the language's direction (mail clients
    do not all know `text-align: start` or `padding-inline-start`)."""
    rtl = text_direction(str(config["publication.language"])) == "rtl"

    def inset(start: str, block: str = "0") -> str:
        """`padding` shorthand with `start` on the side where lines begin."""
        return f"{block} {start} {block} 0" if rtl else f"{block} 0 {block} {start}"

    return _render(env, _STYLESHEET, {"start": "right" if rtl else "left", "inset": inset})


def inline_css(html: str, css: str) -> str:
    """Move the stylesheet into style attributes; only @media rules stay in a <style> block.

    No network and no files: external stylesheets are never fetched, and no base URL is
    set, so premailer leaves every href (and so every placeholder) exactly as written.
    `strip_important=False` keeps the !important premailer adds to @media rules, without
    which no small-screen rule could beat an inline style.
    """
    from premailer import Premailer

    premailer = Premailer(
        html,
        base_url=None,
        disable_link_rewrites=True,
        allow_network=False,
        allow_loading_external_files=False,
        css_text=[css],
        keep_style_tags=False,
        strip_important=False,
        remove_classes=False,
        disable_basic_attributes=["width", "height"],
        cssutils_logging_level=logging.CRITICAL,
        # The stylesheet is the same for every issue: parse it once per process, and
        # skip cssutils' property validation, whose findings would only be logged.
        cache_css_parsing=True,
        disable_validation=True,
    )
    return str(premailer.transform(pretty_print=True))


def _reason(config: Config) -> str:
    """Why the reader gets this mail: the author's own sentence, or the catalog's."""
    configured = str(config["newsletter.reason"]).strip()
    if configured:
        return configured
    words = i18n.translations(str(config["publication.language"]))
    return words.gettext("You are receiving this because you subscribed to {publication}.")


def _context(config: Config, now: datetime, placeholders: Placeholders) -> dict[str, Any]:
    publication = _publication(config)
    return {
        "publication": publication,
        "reason": _fill(_reason(config), publication=publication["title"]),
        "now": now,
        "recipient": {"name": placeholders.name, "email": placeholders.email},
        "unsubscribe_url": placeholders.unsubscribe_url,
        "manage_url": placeholders.manage_url,
        "email_width": EMAIL_WIDTH,
        "content_width": CONTENT_WIDTH,
    }


def render_issue(config: Config, issue: Issue, now: datetime) -> RenderedIssue:
    """Render `issue` once: inlined HTML and plain text, with per-recipient placeholders."""
    env = _environment(config)
    html_name, text_name = _TEMPLATES[issue.kind]
    with_body = issue.kind is IssueKind.ARTICLE
    articles = [_article_view(config, a, body=with_body) for a in issue.articles]
    if not articles:
        raise ValueError(f"issue {issue.key} has no article")
    shared = {"issue": issue, "articles": articles, "article": articles[0]}
    shared["preheader"] = issue.preheader or articles[0].summary
    html_context = {**_context(config, now, HTML_PLACEHOLDERS), **shared}
    text_context = {**_context(config, now, TEXT_PLACEHOLDERS), **shared}
    html = inline_css(_render(env, html_name, html_context), _stylesheet(env, config))
    text = _render(env, text_name, text_context)
    for name, body, token in (
        (html_name, html, HTML_PLACEHOLDERS.unsubscribe_url),
        (text_name, text, TEXT_PLACEHOLDERS.unsubscribe_url),
    ):
        if token not in body:
            raise TemplateError(
                f"{name} has no unsubscribe link: every newsletter must carry one. "
                "Add {{ unsubscribe_url }} to the template."
            )
    return RenderedIssue(
        key=issue.key,
        subject=issue.subject,
        html=html,
        text=text,
        warnings=_warnings(config, issue, html),
    )


def _warnings(config: Config, issue: Issue, html: str) -> tuple[str, ...]:
    found: list[str] = []
    size = len(html.encode("utf-8"))
    limit = int(config["newsletter.clip_warning_bytes"])
    if limit and size > limit:
        found.append(
            f"newsletter {issue.key}: the HTML is {size / 1024:.0f} KB and Gmail clips "
            f"messages over {limit / 1024:.0f} KB, hiding the footer and its unsubscribe "
            "link. Shorten the issue, or send the summary with a link to the archive page."
        )
    logo = str(config["publication.logo"]).strip()
    if urlsplit(logo).path.lower().endswith(".svg"):
        found.append(
            f"config.toml: [publication] logo {logo!r} is an SVG image, which Gmail and Outlook do not "
            "show in mail: the newsletter's masthead would have an empty space. Use a PNG (96 px high "
            "or more) for the logo; the site and its icon take a PNG as well."
        )
    if not str(config["publication.postal_address"]).strip():
        found.append(
            "config.toml: [publication] postal_address is empty; newsletters must show a "
            "postal address in the footer. Set it before sending."
        )
    return tuple(found)


def render_confirmation(config: Config, confirm_url: str, now: datetime) -> RenderedIssue:
    """The double opt-in mail for one address (rendered per request; it has no list headers).

    Send it with a Recipient whose unsubscribe_url is empty.
    """
    env = _environment(config)
    title = str(config["publication.title"])
    words = i18n.translations(str(config["publication.language"]))
    subject = words.gettext("Confirm your subscription to %(title)s") % {"title": title}
    extra = {"confirm_url": confirm_url}
    html_context = {**_context(config, now, HTML_PLACEHOLDERS), **extra}
    text_context = {**_context(config, now, TEXT_PLACEHOLDERS), **extra}
    html_name, text_name = _CONFIRM_TEMPLATES
    html = inline_css(_render(env, html_name, html_context), _stylesheet(env, config))
    return RenderedIssue(
        key="confirm",
        subject=clean_header_text(subject),
        html=html,
        text=_render(env, text_name, text_context),
    )
