"""Ghost's JSON export (Settings > Labs > Export): posts, pages, tags and authors. Pure.

The file is `{"db": [{"meta": ..., "data": {"posts": [...], "tags": [...],
"posts_tags": [...], "users": [...], "posts_authors": [...], "newsletters": [...],
"emails": [...]}}]}`. A post's body is read from `lexical` (Ghost 5), else `mobiledoc`
(Ghost 2 to 4), else `html`. Lexical's cards are rendered here: image (with caption and
alt), callout (its emoji and text as a quote), bookmark (a link with its title and
description), html, markdown, embed (a link to what was embedded: iframes are never
kept), code block, divider. A card this module does not know is reported, and its text
kept where it has any (its children, else its own title, text and description fields:
a product card's title and description). A post that went out as an email (a row in
`emails`, or a newsletter set on a published post) is marked as mailed. Its old address
is /<slug>/. The members the same file may hold come out as `member_rows`, for `readers.py`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from publisher.content.exports import ExportFiles
from publisher.content.exports.articles import (
    ArticleBatch,
    ExportedArticle,
    markdown_to_html,
    parse_date,
    slug_for,
    to_markdown,
)
from publisher.content.extract import ImportedArticle
from publisher.errors import SourceError, SubscriberError
from publisher.models import SubscriberStatus
from publisher.store.subscriber_csv import Rejected, SourceRow

__all__ = ["lexical_to_html", "member_rows", "mobiledoc_to_html", "read_articles"]

_FORMATS = ((1, "strong"), (2, "em"), (4, "s"), (8, "u"), (16, "code"), (32, "sub"), (64, "sup"))
_ESC = html.escape
_TEXT_KEY = re.compile(r"(?:title|header|subheader|text|description|caption|content)$", re.IGNORECASE)


def _text_node(node: Mapping[str, Any]) -> str:
    text = _ESC(str(node.get("text", "")))
    fmt = int(node.get("format") or 0)
    for bit, tag in _FORMATS:
        if fmt & bit:
            text = f"<{tag}>{text}</{tag}>"
    return text


def _children(node: Mapping[str, Any], unknown: list[str]) -> str:
    return "".join(_lexical_node(child, unknown) for child in node.get("children") or ())


def _figure(src: str, alt: str, caption: str) -> str:
    image = f'<img src="{_ESC(src)}" alt="{_ESC(alt)}">'
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>" if caption else f"<p>{image}</p>"


def _lexical_node(node: Mapping[str, Any], unknown: list[str]) -> str:
    kind = str(node.get("type", ""))
    if kind in ("text", "extended-text"):
        return _text_node(node)
    if kind == "linebreak":
        return "<br>"
    if kind in ("paragraph", "extended-paragraph"):
        return f"<p>{_children(node, unknown)}</p>"
    if kind in ("heading", "extended-heading"):
        tag = str(node.get("tag") or "h2")
        tag = tag if tag in ("h1", "h2", "h3", "h4", "h5", "h6") else "h2"
        return f"<{tag}>{_children(node, unknown)}</{tag}>"
    if kind in ("quote", "aside", "extended-quote"):
        return f"<blockquote>{_children(node, unknown)}</blockquote>"
    if kind == "list":
        tag = "ol" if node.get("listType") == "number" else "ul"
        return f"<{tag}>{_children(node, unknown)}</{tag}>"
    if kind == "listitem":
        return f"<li>{_children(node, unknown)}</li>"
    if kind in ("link", "autolink"):
        return f'<a href="{_ESC(str(node.get("url", "")))}">{_children(node, unknown)}</a>'
    if kind == "image":
        return _figure(str(node.get("src", "")), str(node.get("alt", "")), str(node.get("caption", "")))
    if kind == "callout":
        emoji = _ESC(str(node.get("calloutEmoji", "")))
        return f"<blockquote><p>{emoji} </p>{node.get('calloutText', '')}</blockquote>"
    if kind == "bookmark":
        meta = node.get("metadata") or {}
        url = _ESC(str(node.get("url", "")))
        title = _ESC(str(meta.get("title") or node.get("url", "")))
        description = _ESC(str(meta.get("description") or ""))
        extra = f"<br>{description}" if description else ""
        return f'<blockquote><p><a href="{url}">{title}</a>{extra}</p></blockquote>'
    if kind == "html":
        return str(node.get("html", ""))
    if kind == "markdown":
        return markdown_to_html(str(node.get("markdown", "")))
    if kind == "embed":
        url = _ESC(str(node.get("url", "")))
        caption = str(node.get("caption") or "")
        return f'<p><a href="{url}">{url}</a></p>' + (f"<p>{caption}</p>" if caption else "")
    if kind == "codeblock":
        return f"<pre><code>{_ESC(str(node.get('code', '')))}</code></pre>"
    if kind == "horizontalrule":
        return "<hr>"
    unknown.append(kind or "(no type)")
    return _children(node, unknown) or _card_text(node)


def _card_text(node: Mapping[str, Any]) -> str:
    """What a card this module does not know says: its title-, text- and description-like
    fields (`productTitle`, `productDescription`, `header`...), each a paragraph."""
    parts = []
    for key, value in node.items():
        if isinstance(value, str) and value.strip() and _TEXT_KEY.search(key):
            parts.append(value if value.lstrip().startswith("<") else f"<p>{_ESC(value)}</p>")
    return "".join(parts)


def lexical_to_html(document: Mapping[str, Any]) -> tuple[str, list[str]]:
    """A Lexical document as HTML, and the node types it did not know."""
    unknown: list[str] = []
    root = document.get("root") or {}
    return _children(root, unknown), unknown


def mobiledoc_to_html(document: Mapping[str, Any]) -> tuple[str, list[str]]:
    """A mobiledoc document (markup sections, lists, cards) as HTML, and cards it did not know."""
    unknown: list[str] = []
    markups = document.get("markups") or []
    cards = document.get("cards") or []

    def markers(items: Sequence[Any]) -> str:
        out: list[str] = []
        open_tags: list[str] = []
        for marker in items:
            _type, opens, closes, value = [*list(marker), 0, [], 0, ""][:4]
            for index in opens or ():
                tag, attrs = [*list(markups[index]), []][:2]
                pairs = list(zip(attrs[::2], attrs[1::2], strict=False))
                rendered = "".join(f' {k}="{_ESC(str(v))}"' for k, v in pairs)
                out.append(f"<{tag}{rendered}>")
                open_tags.append(str(tag))
            out.append(_ESC(str(value)))
            for _ in range(int(closes or 0)):
                if open_tags:
                    out.append(f"</{open_tags.pop()}>")
        out.extend(f"</{tag}>" for tag in reversed(open_tags))
        return "".join(out)

    parts: list[str] = []
    for section in document.get("sections") or []:
        kind = section[0]
        if kind == 1:
            tag = str(section[1]).lower()
            parts.append(f"<{tag}>{markers(section[2])}</{tag}>")
        elif kind == 3:
            tag = str(section[1]).lower()
            parts.append(f"<{tag}>" + "".join(f"<li>{markers(item)}</li>" for item in section[2]) + f"</{tag}>")
        elif kind == 10:
            name, payload = cards[section[1]]
            if name == "image":
                parts.append(_figure(str(payload.get("src", "")), str(payload.get("alt", "")),
                                     str(payload.get("caption", ""))))
            elif name == "html":
                parts.append(str(payload.get("html", "")))
            elif name in ("markdown", "card-markdown"):
                parts.append(markdown_to_html(str(payload.get("markdown", ""))))
            elif name in ("embed", "bookmark"):
                url = _ESC(str(payload.get("url", "")))
                parts.append(f'<p><a href="{url}">{url}</a></p>')
            elif name == "hr":
                parts.append("<hr>")
            else:
                unknown.append(str(name))
    return "".join(parts), unknown


def _data(files: ExportFiles, name: str) -> Mapping[str, Any]:
    try:
        document = json.loads(files.text(name))
        data = document["db"][0]["data"]
    except json.JSONDecodeError as exc:
        raise SourceError(f"{files.where(name)}: line {exc.lineno}: is not JSON ({exc.msg})") from exc
    except (KeyError, IndexError, TypeError) as exc:
        raise SourceError(f"{files.where(name)}: has no db[0].data; is it Ghost's JSON export?") from exc
    if not isinstance(data, dict):
        raise SourceError(f"{files.where(name)}: db[0].data is not an object; is it Ghost's JSON export?")
    return data


def _by_post(rows: Sequence[Mapping[str, Any]], key: str, names: Mapping[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: int(r.get("sort_order") or 0)):
        name = names.get(str(row.get(key)))
        if name:
            out.setdefault(str(row.get("post_id")), []).append(name)
    return out


def read_articles(files: ExportFiles, *, site: str = "") -> ArticleBatch:
    """The posts and pages of a Ghost JSON export; `site` is the old address, if known."""
    batch = ArticleBatch()
    for name in files.names("*.json"):
        data = _data(files, name)
        tags = {str(t.get("id")): str(t.get("name") or "") for t in data.get("tags") or ()
                if not str(t.get("name") or "").startswith("#")}  # "#internal" tags stay private
        users = {str(u.get("id")): str(u.get("name") or "") for u in data.get("users") or ()}
        post_tags = _by_post(data.get("posts_tags") or (), "tag_id", tags)
        post_authors = _by_post(data.get("posts_authors") or (), "author_id", users)
        emailed = {str(e.get("post_id")) for e in data.get("emails") or ()}
        for index, post in enumerate(data.get("posts") or ()):
            record = f"{name}: posts[{index}]"
            _read_post(post, record, batch, site, tags=post_tags, authors=post_authors, emailed=emailed, users=users)
    return batch


def _read_post(
    post: Mapping[str, Any], record: str, batch: ArticleBatch, site: str, *,
    tags: Mapping[str, list[str]], authors: Mapping[str, list[str]], emailed: set[str], users: Mapping[str, str],
) -> None:
    post_id = str(post.get("id") or "")
    title = " ".join(str(post.get("title") or "").split())
    slug = slug_for(str(post.get("slug") or ""), title, post_id)
    status = str(post.get("status") or "draft")
    date = parse_date(str(post.get("published_at") or post.get("created_at") or ""))
    if not post_id:
        batch.refused.append((record, "no id"))
        return
    if date is None:
        batch.refused.append((record, f"{slug}: published_at is not a date"))
        return
    notes: list[str] = []
    try:
        if post.get("lexical"):
            body_html, unknown = lexical_to_html(json.loads(str(post["lexical"])))
        elif post.get("mobiledoc"):
            body_html, unknown = mobiledoc_to_html(json.loads(str(post["mobiledoc"])))
        else:
            body_html, unknown = str(post.get("html") or ""), []
    except (json.JSONDecodeError, TypeError, KeyError, IndexError, ValueError) as exc:
        batch.refused.append((record, f"{slug}: its body cannot be read ({exc})"))
        return
    if unknown:
        notes.append("cards kept as text: " + ", ".join(sorted(set(unknown))))
    url = f"{site.rstrip('/')}/{slug}/" if site else "https://ghost.invalid/"
    body = to_markdown(body_html.replace("__GHOST_URL__", site.rstrip("/")), base_url=url)
    author = ", ".join(authors.get(post_id) or [users.get(str(post.get("author_id")), "")]).strip(", ")
    image = str(post.get("feature_image") or "") or None
    if image and image.startswith("__GHOST_URL__"):
        image = (site.rstrip("/") if site else "") + image.removeprefix("__GHOST_URL__") or None
    article = ImportedArticle(
        title=title or slug, date=date, body=body,
        origin=url if site else f"/{slug}/", slug=slug, updated=parse_date(str(post.get("updated_at") or "")),
        author=author, summary=" ".join(str(post.get("custom_excerpt") or "").split()),
        tags=tuple(tags.get(post_id) or ()), image=image if image and "://" in image else None,
        image_alt=str(post.get("feature_image_alt") or ""),
    )
    mailed = post_id in emailed or (status == "published" and bool(post.get("newsletter_id")))
    if str(post.get("visibility") or "public") not in ("public", ""):
        notes.append(f"it was for {post.get('visibility')} readers only: imported as a draft")
    batch.articles.append(
        ExportedArticle(
            key=f"ghost:{post_id}", article=article, old_paths=(f"/{slug}/",),
            draft=status != "published" or str(post.get("visibility") or "public") not in ("public", ""),
            emailed=mailed, record=record, notes=tuple(notes),
        )
    )


def member_rows(name: str, data: bytes) -> list[SourceRow | Rejected] | None:
    """The members of a Ghost JSON export (`members`, `labels`, `members_labels`,
    `newsletters`, `members_newsletters`), each as the members CSV would have it: labels
    and newsletters as tags, subscribed when on a newsletter (before newsletters, the
    member's own `subscribed`), bounced when Ghost disabled their email. None when the
    file holds no members table; `readers.py` reads the rows like the CSV's."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
        tables = document["db"][0]["data"]
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError):
        return None  # not Ghost's JSON: the article reader names what is wrong with it
    members = tables.get("members") if isinstance(tables, dict) else None
    if members is None:
        return None
    if not isinstance(members, list):
        raise SubscriberError(f"{name}: db[0].data.members is not a list; export the content again")

    def rows(table: str) -> list[Mapping[str, object]]:
        found = tables.get(table) or []
        return [row for row in found if isinstance(row, dict)] if isinstance(found, list) else []

    def names(table: str) -> dict[str, str]:
        return {str(row.get("id")): str(row.get("name") or "") for row in rows(table)}

    def joined(table: str, key: str, named: Mapping[str, str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for row in sorted(rows(table), key=lambda r: int(str(r.get("sort_order") or 0))):
            if found := named.get(str(row.get(key))):
                out.setdefault(str(row.get("member_id")), []).append(found)
        return out

    labels = joined("members_labels", "label_id", names("labels"))
    newsletters = joined("members_newsletters", "newsletter_id", names("newsletters"))
    by_newsletter = "members_newsletters" in tables
    out: list[SourceRow | Rejected] = []
    for index, member in enumerate(members):
        if not isinstance(member, dict) or not str(member.get("email") or "").strip():
            out.append(Rejected(index, "no email address"))
            continue
        member_id = str(member.get("id") or "")
        theirs = newsletters.get(member_id, [])
        subscribed = bool(theirs) if by_newsletter else member.get("subscribed") not in (False, 0, "false")
        status = SubscriberStatus.BOUNCED if member.get("email_disabled") in (True, 1, "true") else (
            SubscriberStatus.ACTIVE if subscribed else SubscriberStatus.UNSUBSCRIBED)
        cells = {
            "email": str(member.get("email") or ""),
            "name": str(member.get("name") or ""),
            "status": str(member.get("status") or ""),
            "created_at": str(member.get("created_at") or ""),
            "subscribed_to_emails": "true" if subscribed else "false",
        }
        out.append(SourceRow(line=index, email=cells["email"].strip(), name=" ".join(cells["name"].split()),
                             tags=(*labels.get(member_id, ()), *theirs), status=status, cells=cells))
    return out
