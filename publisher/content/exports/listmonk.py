"""listmonk's campaigns: the API's JSON or a PostgreSQL dump. Pure.

Two ways out of listmonk hold campaigns. The API: what `GET /api/campaigns?per_page=all`
answers (`{"data": {"results": [...]}}`), one file or one a page; a file with one
campaign (`GET /api/campaigns/{id}`, `{"data": {...}}`) is read too. The database: a
`pg_dump --data-only` of it (`*.sql`), as COPY blocks or `--inserts`, of which only the
rows of `campaigns` and `campaign_lists` (the lists each went to) are read, never run
(`pg_dump.read_tables`). The same campaign in two files (overlapping pages, the API and
the dump) is read once. A dump's subscribers (`subscribers`, `subscriber_lists`, `lists`)
come out as `subscriber_rows`, for `readers.py`.

A campaign's subject is the title; its body (`content_type` richtext, html or visual:
HTML; markdown; plain) becomes Markdown like every import. A finished campaign is
published and marked as mailed, naming the lists it went to, so it is never sent again;
one that listmonk started and then paused or cancelled is a draft that is never mailed
either; a draft or a scheduled campaign is a draft (nothing is sent by surprise).

listmonk's template expressions mean nothing here: `{{ TrackLink "url" }}` and
`url@TrackLink` become the plain URL (no click tracking), `{{ Safe "..." }}` its text,
a link whose address is `{{ UnsubscribeURL }}` (or MessageURL, OptinURL, ManageURL) is
removed whole (every newsletter here carries its own), and every other expression
(`{{ .Subscriber.FirstName }}`, `{{ TrackView }}`, `{{ if }}`...) is removed and named in
the article's notes. A campaign in the public archive had its page at
`/archive/<archive_slug>` and `/archive/<uuid>`: each gets a redirect.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from publisher.content.exports import ExportFiles, pg_dump
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
from publisher.store.subscriber_csv import LISTMONK_STATUSES, Rejected, SourceRow

__all__ = ["CAMPAIGN_COLUMNS", "plain_template", "read_articles", "subscriber_rows"]

CAMPAIGN_COLUMNS = (
    "id", "uuid", "name", "subject", "from_email", "body", "body_source", "altbody", "content_type", "send_at",
    "headers", "attribs", "status", "tags", "type", "messenger", "template_id", "to_send", "sent",
    "max_subscriber_id", "last_subscriber_id", "archive", "archive_slug", "archive_template_id", "archive_meta",
    "started_at", "created_at", "updated_at",
)
"""`campaigns` as listmonk's schema.sql creates it: the order of an INSERT without column names."""
_TABLES = {
    "campaigns": CAMPAIGN_COLUMNS,
    "campaign_lists": ("id", "campaign_id", "list_id", "list_name"),
}
_STARTED = frozenset({"running", "paused", "cancelled"})

_SHORT_TRACK_RE = re.compile(r"(?P<url>https?://[^\s\"'<>()]+?)@TrackLink\b")
_TRACK_RE = re.compile(r"\{\{-?\s*TrackLink\s+(?:\"(?P<dq>[^\"]*)\"|`(?P<bq>[^`]*)`)(?:\s+\.)?\s*-?\}\}")
_SAFE_RE = re.compile(r"\{\{-?\s*Safe\s+\"(?P<text>(?:[^\"\\]|\\.)*)\"\s*-?\}\}")
_PAGE_LINKS = r"(?:UnsubscribeURL|MessageURL|OptinURL|ManageURL)"
_PAGE_ANCHOR_RE = re.compile(
    r"<a\b[^>]*?href\s*=\s*[\"']\s*\{\{-?\s*" + _PAGE_LINKS + r"\b[^}]*\}\}\s*[\"'][^>]*>.*?</a\s*>",
    re.IGNORECASE | re.DOTALL,
)
_PAGE_MARKDOWN_RE = re.compile(r"\[[^\]]*\]\(\s*\{\{-?\s*" + _PAGE_LINKS + r"\b[^}]*\}\}\s*\)")
_EXPRESSION_RE = re.compile(r"\{\{-?\s*(?P<inner>.*?)\s*-?\}\}", re.DOTALL)
_BETWEEN_RE = re.compile(r"\x00(?:[ \t]*(?:&middot;|&#183;|·|\||&bull;|•|-)[ \t]*\x00)+")
"""Two removed links and the separator between them ("Unsubscribe · View in browser")."""
_LOGIC = frozenset({"if", "else", "end", "range", "with"})
_GAP_RE = re.compile(r"[ \t]*\x00+(?:[ \t]*(?=[,.!?;:)]))?")


def plain_template(body: str) -> tuple[str, list[str]]:
    """`body` without listmonk's template expressions (see the module), and those removed."""
    removed: list[str] = []
    text = _SHORT_TRACK_RE.sub(lambda m: m["url"], body)
    text = _TRACK_RE.sub(lambda m: m["dq"] if m["dq"] is not None else m["bq"], text)
    text = _SAFE_RE.sub(lambda m: m["text"].replace('\\"', '"'), text)

    def link(match: re.Match[str]) -> str:
        found = re.search(_PAGE_LINKS, match.group(0))
        removed.append(f"the {found.group(0) if found else 'page'} link")
        return "\x00"

    text = _PAGE_ANCHOR_RE.sub(link, text)
    text = _PAGE_MARKDOWN_RE.sub(link, text)

    def expression(match: re.Match[str]) -> str:
        inner = " ".join(match["inner"].split())
        word = inner.split(" ", 1)[0] if inner else "{{ }}"
        removed.append(word if word in _LOGIC else inner[:40])
        return "\x00"

    text = _EXPRESSION_RE.sub(expression, text)
    text = _BETWEEN_RE.sub("\x00", text)
    logic = [word for word in removed if word in _LOGIC]
    if logic:
        removed = [word for word in removed if word not in _LOGIC]
        removed.append("{{ " + " }}, {{ ".join(dict.fromkeys(logic)) + " }} (the text inside is kept for every reader)")
    return _GAP_RE.sub("", text), list(dict.fromkeys(removed))


_READER_TABLES = {
    "subscribers": ("id", "uuid", "email", "name", "attribs", "status", "created_at", "updated_at"),
    "subscriber_lists": ("subscriber_id", "list_id", "meta", "status", "created_at", "updated_at"),
    "lists": ("id", "uuid", "name", "type", "optin", "status", "tags", "description", "created_at", "updated_at"),
}


def subscriber_rows(name: str, data: bytes) -> list[SourceRow | Rejected] | None:
    """The subscribers of a database dump, each as the subscribers CSV (with its lists
    column) would have it, for `readers.py`; None when the dump holds none."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None  # the campaigns' reader names the byte
    tables = pg_dump.read_tables(text, _READER_TABLES, where=name)
    if not tables["subscribers"]:
        return None
    list_names = {row.get("id"): str(row.get("name") or "") for row in tables["lists"]}
    lists: dict[str | None, list[dict[str, str]]] = {}
    for row in tables["subscriber_lists"]:
        lists.setdefault(row.get("subscriber_id"), []).append({
            "name": list_names.get(row.get("list_id")) or f"list {row.get('list_id')}",
            "subscription_status": str(row.get("status") or "unconfirmed"),
        })
    out: list[SourceRow | Rejected] = []
    for line, row in enumerate(tables["subscribers"], start=1):
        email = str(row.get("email") or "").strip()
        word = str(row.get("status") or "enabled").lower()
        status = LISTMONK_STATUSES.get(word)
        if not email or status is None:
            out.append(Rejected(line, "no email address" if not email else
                                f"unknown listmonk status {word!r} (expected one of {', '.join(LISTMONK_STATUSES)})"))
            continue
        cells = {"email": email, "name": str(row.get("name") or ""), "status": word,
                 "created_at": str(row.get("created_at") or ""), "attributes": str(row.get("attribs") or ""),
                 "lists": json.dumps(lists.get(row.get("id"), []))}
        out.append(SourceRow(line=line, email=email, name=" ".join(cells["name"].split()), status=status,
                             cells=cells))
    return out


def _campaign_files(files: ExportFiles) -> Iterator[tuple[str, list[tuple[str, Mapping[str, Any]]]]]:
    """Each file that holds campaigns, and its campaigns with the record that names them."""
    for name in files.names("*.json"):
        yield name, _api_campaigns(files, name)
    for name in files.names("*.sql"):
        yield name, _dump_campaigns(files, name)


def _api_campaigns(files: ExportFiles, name: str) -> list[tuple[str, Mapping[str, Any]]]:
    where = files.where(name)
    try:
        document = json.loads(files.text(name))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: line {exc.lineno}: is not JSON ({exc.msg})") from exc
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        found = data["results"]
    elif isinstance(data, dict) and "subject" in data:
        found = [data]
    else:
        raise SourceError(
            f"{where}: has no data.results; save what GET /api/campaigns?per_page=all answers, as it is"
        )
    if found and not any(isinstance(item, dict) and "subject" in item for item in found):
        raise SourceError(
            f"{where}: its results have no subject, so they are not campaigns (subscribers are read from "
            "the subscribers CSV); save what GET /api/campaigns?per_page=all answers"
        )
    out: list[tuple[str, Mapping[str, Any]]] = []
    for index, campaign in enumerate(found):
        record = f"{name}: data.results[{index}]"
        if not isinstance(campaign, dict):
            out.append((record, {}))
            continue
        lists = [str(item.get("name") or "") for item in campaign.get("lists") or () if isinstance(item, dict)]
        out.append((record, {**campaign, "lists": [n for n in lists if n]}))
    return out


def _dump_campaigns(files: ExportFiles, name: str) -> list[tuple[str, Mapping[str, Any]]]:
    tables = pg_dump.read_tables(files.text(name), _TABLES, where=files.where(name))
    lists: dict[str, list[str]] = {}
    for row in tables["campaign_lists"]:
        if row.get("list_name"):
            lists.setdefault(str(row.get("campaign_id")), []).append(str(row["list_name"]))
    out: list[tuple[str, Mapping[str, Any]]] = []
    for index, row in enumerate(tables["campaigns"]):
        campaign: dict[str, Any] = dict(row)
        campaign["tags"] = pg_dump.array(row.get("tags"))
        campaign["archive"] = row.get("archive") in ("t", "true")
        campaign["lists"] = lists.get(str(row.get("id")), [])
        out.append((f"{name}: campaigns row {index + 1}", campaign))
    return out


def read_articles(files: ExportFiles, *, site: str = "") -> ArticleBatch:
    """The campaigns of a listmonk export (API JSON or database dump); `site` is listmonk's
    public address, if known."""
    batch = ArticleBatch()
    seen: set[str] = set()
    for _name, campaigns in _campaign_files(files):
        for record, campaign in campaigns:
            key = str(campaign.get("uuid") or campaign.get("id") or "")
            if key and key in seen:
                continue  # the same campaign on two pages, or in the API and the dump
            seen.add(key)
            _read_campaign(campaign, record, batch, site)
    return batch


def _body_html(body: str, content_type: str) -> str:
    if content_type == "markdown":
        return markdown_to_html(body)
    if content_type == "plain":
        paragraphs = (p.strip() for p in re.split(r"\n\s*\n", body))
        return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs if p)
    return body  # richtext, html, and visual (whose body listmonk renders to HTML)


def _when(campaign: Mapping[str, Any], *keys: str) -> datetime | None:
    for key in keys:
        found = parse_date(str(campaign.get(key) or ""))
        if found is not None:
            return found
    return None


def _read_campaign(campaign: Mapping[str, Any], record: str, batch: ArticleBatch, site: str) -> None:
    campaign_id = str(campaign.get("id") or "")
    uuid = str(campaign.get("uuid") or "")
    title = " ".join(str(campaign.get("subject") or campaign.get("name") or "").split())
    archive_slug = str(campaign.get("archive_slug") or "")
    slug = slug_for(archive_slug, title, campaign_id or uuid)
    status = str(campaign.get("status") or "draft").lower()
    content_type = str(campaign.get("content_type") or "richtext").lower()
    if not (campaign_id or uuid):
        batch.refused.append((record, "no id or uuid; is it a listmonk campaign?"))
        return
    sent = status == "finished" or (status in _STARTED and (int(campaign.get("sent") or 0) > 0
                                                            or bool(campaign.get("started_at"))))
    date = _when(campaign, "started_at", "send_at", "created_at") if sent else _when(
        campaign, "send_at", "created_at", "updated_at")
    if date is None:
        batch.refused.append((record, f"{slug}: no date (started_at, send_at, created_at); export it again"))
        return
    if content_type not in ("richtext", "html", "visual", "markdown", "plain"):
        batch.refused.append((record, f"{slug}: content_type {content_type!r} is none of richtext, html, "
                                      "markdown, plain, visual"))
        return
    body, removed = plain_template(str(campaign.get("body") or ""))
    archived = bool(campaign.get("archive")) and campaign.get("archive") not in ("f", "false")
    old_paths = tuple(f"/archive/{part}" for part in (archive_slug, uuid) if archived and part)
    root = site.rstrip("/")
    url = f"{root}/archive/{archive_slug or uuid}" if root and old_paths else (root + "/" if root else
                                                                                "https://listmonk.invalid/")
    lists = [str(name) for name in campaign.get("lists") or ()]
    notes = _notes(status, campaign, lists, date, removed, sent=sent)
    author = parseaddr(str(campaign.get("from_email") or ""))[0]
    article = ImportedArticle(
        title=title or slug, date=date, body=to_markdown(_body_html(body, content_type), base_url=url),
        origin=url if root and old_paths else f"listmonk campaign {campaign_id or uuid}", slug=slug,
        updated=_when(campaign, "updated_at"), author=author, tags=_tags(campaign.get("tags")),
    )
    batch.articles.append(
        ExportedArticle(
            key=f"listmonk:{uuid or campaign_id}", article=article, old_paths=old_paths,
            draft=status != "finished", emailed=sent, record=record, notes=tuple(notes),
        )
    )


def _tags(value: Any) -> tuple[str, ...]:
    items: Sequence[Any] = value if isinstance(value, list) else pg_dump.array(str(value)) if value else []
    return tuple(dict.fromkeys(" ".join(str(t).split()) for t in items if str(t).strip()))


def _notes(status: str, campaign: Mapping[str, Any], lists: list[str], date: datetime, removed: list[str],
           *, sent: bool) -> list[str]:
    notes: list[str] = []
    where = f" to {', '.join(lists)}" if lists else ""
    if status == "finished":
        notes.append(f"mailed by listmonk{where} on {date:%Y-%m-%d}: never mailed again here")
    elif sent:
        count = f" after {campaign.get('sent')} of {campaign.get('to_send')} copies" if campaign.get("to_send") else ""
        notes.append(f"listmonk {status} it{count}{where}: a draft here, never mailed again")
    elif status == "scheduled":
        notes.append(f"was scheduled in listmonk for {date:%Y-%m-%d %H:%M} UTC: a draft here; schedule it here "
                     "if it should still go out")
    if removed:
        notes.append("listmonk template expressions removed: " + ", ".join(removed))
    return notes
