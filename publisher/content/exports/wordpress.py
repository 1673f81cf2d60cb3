"""WordPress's export file (WXR: Tools > Export), read without entity expansion. Pure.

WXR is RSS 2.0 with the `wp:`, `content:`, `excerpt:` and `dc:` namespaces: one <item>
per post, page, attachment or menu entry. Posts and pages are read (published ones as
articles, drafts as drafts; revisions, menu entries and the like are skipped silently),
attachments only to find a post's featured image (`_thumbnail_id`). The XML is parsed with
defusedxml: a file that declares entities (the "billion laughs") or an external DTD is
refused, naming the file.

WordPress stores a post's body as the editor left it: paragraphs are blank lines
(`wpautop`), and shortcodes are in square brackets. `[caption]` becomes a figure with
its caption, `[gallery ids="..."]` the gallery's pictures; every other shortcode is kept
as text and named in the article's notes, for the author to replace. Old addresses: the
item's <link> (/2024/05/slug/ or whatever the permalinks were) and /?p=<id>.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

from publisher.content.exports import ExportFiles
from publisher.content.exports.articles import ArticleBatch, ExportedArticle, parse_date, slug_for, to_markdown
from publisher.content.extract import ImportedArticle
from publisher.errors import SourceError

__all__ = ["autop", "read_articles", "shortcodes"]

_NS = {
    "wp": "http://wordpress.org/export/1.2/",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "excerpt": "http://wordpress.org/export/1.2/excerpt/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_CAPTION_RE = re.compile(r"\[caption(?P<attrs>[^\]]*)\](?P<inner>.*?)\[/caption\]", re.DOTALL)
_GALLERY_RE = re.compile(r"\[gallery(?P<attrs>[^\]]*)\]")
_SHORTCODE_RE = re.compile(r"\[(?P<name>[a-zA-Z][\w-]*)(?:\s[^\]]*)?\]")
_ATTR_RE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_IMG_RE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_BLOCK_RE = re.compile(r"^\s*<(?:p|div|h[1-6]|ul|ol|li|blockquote|pre|figure|table|hr|!--)", re.IGNORECASE)


def autop(text: str) -> str:
    """WordPress's paragraphs: text between blank lines is a <p>, unless it is a block already."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if b.strip()]
    return "\n".join(b if _BLOCK_RE.match(b) else "<p>" + b.replace("\n", "<br>\n") + "</p>" for b in blocks)


def shortcodes(text: str, attachments: Mapping[str, str]) -> tuple[str, list[str]]:
    """[caption] and [gallery] as HTML; the names of the other shortcodes, kept as text."""

    def caption(match: re.Match[str]) -> str:
        inner = match.group("inner")
        image = _IMG_RE.search(inner)
        if image is None:
            return inner
        words = (inner[: image.start()] + inner[image.end() :]).strip()
        words = re.sub(r"^</?a[^>]*>|</a>", "", words).strip()
        link_start = inner.rfind("<a", 0, image.start())
        linked = link_start != -1 and "</a>" in inner
        picture = inner[link_start : inner.find("</a>", image.end()) + 4] if linked else image.group(0)
        return f"<figure>{picture}<figcaption>{words}</figcaption></figure>"

    def gallery(match: re.Match[str]) -> str:
        attrs = dict(_ATTR_RE.findall(match.group("attrs")))
        ids = [i.strip() for i in attrs.get("ids", "").split(",") if i.strip()]
        found = [attachments[i] for i in ids if i in attachments]
        return "".join(f'<p><img src="{url}" alt=""></p>' for url in found) or match.group(0)

    text = _CAPTION_RE.sub(caption, text)
    text = _GALLERY_RE.sub(gallery, text)
    unknown = sorted({m.group("name") for m in _SHORTCODE_RE.finditer(text) if not m.group("name").startswith("/")})
    return text, unknown


def _text(item: Element, path: str) -> str:
    found = item.find(path, _NS)
    return (found.text or "") if found is not None else ""


def _parse(files: ExportFiles, name: str) -> Element:
    try:
        root: Element = safe_xml.fromstring(files.read(name), forbid_dtd=False, forbid_entities=True,
                                            forbid_external=True)
    except DefusedXmlException as exc:
        raise SourceError(
            f"{files.where(name)}: declares XML entities or an external DTD ({type(exc).__name__}), "
            "which a WordPress export never needs; refused. Export it again from Tools > Export"
        ) from exc
    except ParseError as exc:
        raise SourceError(f"{files.where(name)}: is not well-formed XML ({exc}); export it again") from exc
    return root


def read_articles(files: ExportFiles, *, site: str = "") -> ArticleBatch:
    """The posts and pages of every WXR file in the export."""
    batch = ArticleBatch()
    for name in files.names("*.xml", "*.wxr"):
        root = _parse(files, name)
        channel = root.find("channel")
        if channel is None or root.tag != "rss":
            raise SourceError(f"{files.where(name)}: has no <rss><channel>; is it a WordPress export (WXR)?")
        base = site or _text(channel, "link") or "https://wordpress.invalid/"
        items = channel.findall("item")
        attachments = {
            _text(i, "wp:post_id"): _text(i, "wp:attachment_url")
            for i in items if _text(i, "wp:post_type") == "attachment" and _text(i, "wp:attachment_url")
        }
        for index, item in enumerate(items, start=1):
            _read_item(item, f"{name}: item {index}", batch, base, attachments)
    return batch


def _read_item(item: Element, record: str, batch: ArticleBatch, base: str, attachments: Mapping[str, str]) -> None:
    kind = _text(item, "wp:post_type")
    status = _text(item, "wp:status")
    if kind not in ("post", "page") or status in ("trash", "auto-draft", "inherit"):
        return
    post_id = _text(item, "wp:post_id").strip()
    title = " ".join(_text(item, "title").split())
    link = _text(item, "link").strip()
    slug = slug_for(_text(item, "wp:post_name"), title, post_id)
    record = f"{record} ({slug})"
    date = parse_date(_text(item, "wp:post_date_gmt")) if _text(item, "wp:post_date_gmt").strip("0-: ") else None
    date = date or parse_date(_text(item, "pubDate")) or parse_date(_text(item, "wp:post_date"))
    if not post_id:
        batch.refused.append((record, "no wp:post_id"))
        return
    if date is None:
        batch.refused.append((record, "no date it was published (wp:post_date_gmt, pubDate)"))
        return
    content, unknown = shortcodes(_text(item, "content:encoded"), attachments)
    notes = [f"shortcodes kept as text: [{'], ['.join(unknown)}]"] if unknown else []
    body = to_markdown(autop(content), base_url=link or base)
    categories = [(c.get("domain"), " ".join((c.text or "").split())) for c in item.findall("category")]
    tags = [t for domain, t in categories if domain in ("category", "post_tag") and t and t != "Uncategorized"]
    metas = item.findall("wp:postmeta", _NS)
    thumbnail = next((_text(m, "wp:meta_value") for m in metas if _text(m, "wp:meta_key") == "_thumbnail_id"), "")
    excerpt = " ".join(re.sub(r"<[^>]+>", " ", _text(item, "excerpt:encoded")).split())
    article = ImportedArticle(
        title=title or slug, date=date, body=body, origin=link or f"{base.rstrip('/')}/?p={post_id}", slug=slug,
        author=_text(item, "dc:creator").strip(), summary=excerpt, tags=tuple(dict.fromkeys(tags)),
        image=attachments.get(thumbnail.strip()) or None,
    )
    old = [f"/?p={post_id}"] if kind == "post" else [f"/?page_id={post_id}"]
    if link:
        old.insert(0, urlsplit(link).path or "/")
    batch.articles.append(
        ExportedArticle(
            key=f"wordpress:{post_id}", article=article, old_paths=tuple(p for p in old if p != "/"),
            draft=status != "publish", emailed=False, record=record, notes=tuple(notes),
        )
    )
