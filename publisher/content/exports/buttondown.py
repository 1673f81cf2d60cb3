"""Buttondown's export (Settings > Export): emails.csv, and each email's body. Pure.

emails.csv has a row per email: `id`, `subject`, `publish_date`, `slug`, `status`
("sent", "imported", "draft", "scheduled"...) and, in older exports, `body`; newer
exports put each body in emails/<slug>.md. Bodies are Markdown that may hold HTML: they
are rendered, sanitised and turned back into Markdown like every import. An email that
was sent is marked as mailed. Its old address is /archive/<slug>/.
"""

from __future__ import annotations

import csv
import io

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
from publisher.errors import SourceError

__all__ = ["read_articles"]

_SENT = frozenset({"sent", "imported", "about_to_send", "in_flight", "transactional"})


def read_articles(files: ExportFiles, *, site: str = "") -> ArticleBatch:
    """The emails of a Buttondown export; `site` is the old archive's address, if known."""
    found = files.names("emails.csv")
    if not found:
        return ArticleBatch()
    name = found[0]
    folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
    reader = csv.DictReader(io.StringIO(files.text(name), newline=""))
    if "subject" not in (reader.fieldnames or ()):
        raise SourceError(f"{files.where(name)}: has no subject column; is it Buttondown's emails.csv?")
    batch = ArticleBatch()
    for line, row in enumerate(reader, start=2):
        record = f"{name}:{line}"
        title = " ".join((row.get("subject") or "").split())
        email_id = (row.get("id") or "").strip()
        slug = slug_for(row.get("slug") or "", title, email_id)
        date = parse_date(row.get("publish_date") or row.get("creation_date") or "")
        if not email_id:
            batch.refused.append((record, "no id"))
            continue
        if date is None:
            batch.refused.append((record, f"publish_date {row.get('publish_date')!r} is not a date"))
            continue
        body_name = next((n for n in (f"{folder}emails/{slug}.md", f"emails/{slug}.md") if n in files.members), None)
        markdown = files.text(body_name) if body_name else (row.get("body") or "")
        url = f"{site.rstrip('/')}/archive/{slug}/" if site else "https://buttondown.invalid/"
        status = (row.get("status") or "sent").strip().lower()
        article = ImportedArticle(
            title=title or slug, date=date, body=to_markdown(markdown_to_html(markdown), base_url=url),
            origin=url if site else f"/archive/{slug}/", slug=slug,
            summary=" ".join((row.get("description") or "").split()),
        )
        batch.articles.append(
            ExportedArticle(
                key=f"buttondown:{email_id}", article=article, old_paths=(f"/archive/{slug}/",),
                draft=status not in _SENT, emailed=status in _SENT, record=record,
            )
        )
    return batch
