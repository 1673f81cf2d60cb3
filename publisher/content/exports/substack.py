"""Substack's export zip: posts.csv and each post's body in posts/<post_id>.html. Pure.

posts.csv has one row per post: `post_id` ("123456.my-post", the id then the slug),
`post_date`, `is_published`, `email_sent_at`, `type` (newsletter, podcast, thread),
`audience` (everyone, only_paid, founding), `title`, `subtitle`. The body is the HTML
file named after the post_id. Substack's own markup is turned into ours: footnote anchors
and footnotes become Markdown footnotes, the paywall marker is removed (noted: what
followed it is public here), captions stay under their image. A post for paying
readers only comes in as a draft, so nothing paid becomes public unasked. Its old address
is /p/<slug>.
"""

from __future__ import annotations

import csv
import io
import re

from lxml import etree

from publisher.content.exports import ExportFiles
from publisher.content.exports.articles import (
    ArticleBatch,
    ExportedArticle,
    fragment,
    parse_date,
    serialise,
    slug_for,
    to_markdown,
)
from publisher.content.extract import ImportedArticle
from publisher.errors import SourceError

__all__ = ["read_articles"]

_NOTE_RE = re.compile(r"\[\^fn-(\d+)\]")


def _footnotes(root: etree._Element) -> dict[str, str]:
    """Replace Substack's footnote markup by placeholders; the footnotes' texts by number."""
    texts: dict[str, str] = {}
    for note in root.xpath("//div[contains(concat(' ', @class, ' '), ' footnote ')]"):
        number = "".join(note.xpath(".//a[contains(@class, 'footnote-number')]//text()")).strip()
        content = note.xpath(".//div[contains(@class, 'footnote-content')]")
        if number and content:
            texts[number] = " ".join("".join(content[0].itertext()).split())
        parent = note.getparent()
        if parent is not None:
            parent.remove(note)
    for anchor in root.xpath("//a[contains(@class, 'footnote-anchor')]"):
        number = "".join(anchor.itertext()).strip()
        marker = f"[^fn-{number}]"
        parent = anchor.getparent()
        if parent is None:
            continue
        previous = anchor.getprevious()
        tail = marker + (anchor.tail or "")
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
        parent.remove(anchor)
    return texts


def _body(html: str, url: str) -> tuple[str, list[str]]:
    notes: list[str] = []
    root = fragment(html)
    walls = root.xpath("//div[contains(@class, 'paywall-jump')] | //*[@data-component-name='PaywallToDOM']")
    for wall in walls:
        parent = wall.getparent()
        if parent is not None:
            parent.remove(wall)
    if walls:
        notes.append("its paywall marker was removed: what followed it is public here")
    for junk in root.xpath("//*[contains(@class, 'subscription-widget') or contains(@class, 'button-wrapper')]"):
        parent = junk.getparent()
        if parent is not None:
            parent.remove(junk)
    texts = _footnotes(root)
    markdown = to_markdown(serialise(root), base_url=url)
    # The converter escapes the placeholders' brackets; put them back as footnote references.
    markdown = markdown.replace("\\[^fn-", "[^fn-").replace("\\_", "_")
    markdown = re.sub(r"\[\^fn-(\d+)\\?\]", r"[^\1]", markdown)
    if texts:
        markdown = markdown.rstrip() + "\n\n" + "\n".join(f"[^{n}]: {t}" for n, t in texts.items()) + "\n"
    return markdown, notes


def read_articles(files: ExportFiles, *, site: str = "") -> ArticleBatch:
    """The posts of a Substack export; `site` is the old publication's address, if known."""
    found = files.names("posts.csv")
    if not found:
        return ArticleBatch()
    name = found[0]
    folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
    batch = ArticleBatch()
    reader = csv.DictReader(io.StringIO(files.text(name), newline=""))
    missing = {"post_id", "title"} - set(reader.fieldnames or ())
    if missing:
        raise SourceError(
            f"{files.where(name)}: has no {', '.join(sorted(missing))} column; is it Substack's posts.csv?"
        )
    for line, row in enumerate(reader, start=2):
        record = f"{name}:{line}"
        post_id = (row.get("post_id") or "").strip()
        title = " ".join((row.get("title") or "").split())
        number, _, slug = post_id.partition(".")
        if not post_id or not number:
            batch.refused.append((record, "no post_id"))
            continue
        date = parse_date(row.get("post_date") or "")
        if date is None:
            batch.refused.append((record, f"post_date {row.get('post_date')!r} is not a date"))
            continue
        html_name = next(
            (n for n in (f"{folder}posts/{post_id}.html", f"posts/{post_id}.html") if n in files.members), None
        )
        if html_name is None:
            batch.refused.append((record, f"its body posts/{post_id}.html is not in the export"))
            continue
        slug = slug_for(slug, title, number)
        url = f"{site.rstrip('/')}/p/{slug}" if site else f"/p/{slug}"
        body, notes = _body(files.text(html_name), url if site else "https://substack.invalid/")
        if not title:
            title = slug.replace("-", " ").capitalize()
        audience = (row.get("audience") or "everyone").strip()
        published = (row.get("is_published") or "true").strip().lower() in ("true", "1", "yes", "t")
        paid = audience in ("only_paid", "founding")
        if paid:
            notes.append("it was for paying readers only: imported as a draft")
        article = ImportedArticle(
            title=title, date=date, body=body, origin=url, slug=slug,
            summary=" ".join((row.get("subtitle") or "").split()),
        )
        batch.articles.append(
            ExportedArticle(
                key=f"substack:{number}", article=article, old_paths=(f"/p/{slug}",),
                draft=paid or not published, emailed=bool((row.get("email_sent_at") or "").strip()),
                record=record, notes=tuple(notes),
            )
        )
    return batch
