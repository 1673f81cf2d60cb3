"""The W3C Feed Validation Service's rules, as far as our feeds can break them, in stdlib code.

The validator (validator.w3.org/feed, source at github.com/w3c/feedvalidator) is not on
PyPI and needs the network, so the tests hold our feeds to its rules here. Each check
names the validator message it stands for. Covered:

Every XML feed
- well-formed XML 1.0 in UTF-8 (SAXError, UnicodeError);
- dates: RFC 822 with a four-digit year and the right weekday in RSS (InvalidRFC2822Date,
  IncorrectDOW), RFC 3339 in Atom (InvalidRFC3339Date), none before 1990 (ImplausibleDate);
- URIs absolute and made only of URI characters: no spaces, no raw non-ASCII, no bare "%"
  (InvalidFullLink, InvalidUriChar, InvalidURLAttribute);
- escaped HTML (content, description) free of script, meta, embed, object, iframe,
  on* handlers, javascript: URLs, relative links and style declarations outside the
  validator's harmless list (ContainsScript, SecurityRisk, SecurityRiskAttr,
  DangerousStyleAttr, ContainsRelRef);
- a language tag shaped like ISO 639 (+ subtags) in `language` and `xml:lang` (InvalidLanguage);
- rel="self" link present, absolute, with a type (MissingAtomSelfLink, MissingSelf,
  MissingTypeAttr).

RSS 2.0
- rss version="2.0" around exactly one channel; channel title, link, description present,
  non-blank and not repeated (MissingElement, NotBlank, DuplicateElement);
- managingEditor is "address (Real Name)" (InvalidContact, MissingRealName);
- each item has a title or a description, a guid (MissingGuid) unique in the channel
  (DuplicateValue), isPermaLink true|false, a tag: or urn: guid never a permalink
  (InvalidPermalink), a description before content:encoded (NeedDescriptionBeforeContent),
  non-blank categories, a non-blank title.

Atom 1.0
- feed id, title, updated exactly once; id a full, canonical IRI or a valid tag URI
  (MissingElement, InvalidFullLink, InvalidTAG, NonCanonicalURI);
- an author on the feed or on every entry, each with a name (MissingElement);
- no two links with the same rel, type and hreflang (DuplicateAtomLink);
- each entry: id (unique: DuplicateIds), title, updated, an author, content or an
  alternate link, a summary when content is not text (MissingTextualContent),
  categories with a non-blank term.

JSON Feed 1.1 (jsonfeed.org/version/1.1)
- version URL, title, items; home_page_url, feed_url, icons absolute;
- authors as objects with a name, url or avatar; hubs with type and url;
- each item: non-empty string id unique in the feed, content_html or content_text,
  absolute url and image, RFC 3339 dates, tags as strings, no 1.0-only `author`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
MEDIA = "{http://search.yahoo.com/mrss/}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

_RFC822 = re.compile(
    r"^(?:(Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d\d? (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d(:\d\d)? ([+-]\d\d[03]0|UT|GMT|EST|EDT|CST|CDT|MST|MDT|PST|PDT|Z)$"
)
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9;/?:@&=+$.\-_!~*'()%,#\[\]]+$")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_TAG_URI = re.compile(
    r"^tag:([a-z0-9\-._]+?@)?[a-z0-9.\-]+?,\d{4}(-\d{2}(-\d{2})?)?:"
    r"[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*(#[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*)?$"
)
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_ADDR_SPEC = re.compile(r"^[A-Za-z0-9_\-+.']+@([A-Za-z0-9\-]+\.)+[A-Za-z0-9][-A-Za-z0-9]*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSAFE_TAGS = frozenset({"script", "meta", "embed", "object", "iframe", "frame", "applet", "style", "link", "base"})
_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "action", "background", "poster", "longdesc"})
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# A part of the validator's acceptable CSS: what sanitised article HTML might carry.
_SAFE_CSS = frozenset({
    "text-align", "vertical-align", "color", "background-color", "font-style", "font-weight",
    "text-decoration", "white-space", "width", "height", "direction", "unicode-bidi",
})
_SAFE_CSS_VALUE = re.compile(r"^[-#%.,\sa-zA-Z0-9()]*$")


def feed_problems(name: str, data: bytes) -> list[str]:
    """Every rule the feed breaks, as "name: where: what" lines; [] for a valid feed."""
    if name.endswith(".json"):
        return [f"{name}: {p}" for p in json_feed_problems(data)]
    try:
        root = ElementTree.fromstring(data)  # noqa: S314  (our own output)
    except ElementTree.ParseError as exc:
        return [f"{name}: not well-formed XML: {exc}"]
    if not data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>") and not data.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>'
    ):
        return [f"{name}: no UTF-8 XML declaration"]
    if root.tag == "rss":
        problems = rss_problems(root)
    elif root.tag == f"{ATOM}feed":
        problems = atom_problems(root)
    else:
        problems = [f"unknown root element {root.tag}"]
    return [f"{name}: {p}" for p in problems]


def uri_problem(value: str | None, *, allow_tag: bool = False) -> str | None:
    """Why `value` is not an absolute URI (or a valid tag URI when allowed), or None."""
    if not value:
        return "empty URI"
    if value != value.strip():
        return f"whitespace around URI {value!r}"
    if value.startswith("tag:"):
        if not allow_tag:
            return f"tag URI where a link is needed: {value!r}"
        return None if _TAG_URI.match(value) else f"invalid tag URI {value!r}"
    if not _URI.match(value):
        bad = next((c for c in value if not re.match(r"[A-Za-z0-9;/?:@&=+$.\-_!~*'()%,#\[\]]", c)), "")
        return f"not an absolute URI {value!r}" + (f" (character {bad!r})" if bad else "")
    if _BAD_PERCENT.search(value):
        return f"bare '%' in URI {value!r}"
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and not parts.netloc:
        return f"http URI without a host {value!r}"
    return None


def canonical_problem(value: str) -> str | None:
    """NonCanonicalURI: scheme and host lower case, no default port, upper-case %XX."""
    if value.startswith(("tag:", "urn:")):
        return None
    parts = urlsplit(value)
    host = parts.netloc
    expected_host = host.lower()
    port = _DEFAULT_PORTS.get(parts.scheme.lower())
    if port is not None and expected_host.endswith(f":{port}"):
        expected_host = expected_host.removesuffix(f":{port}")
    if parts.scheme != parts.scheme.lower() or host != expected_host:
        return f"non-canonical URI {value!r}"
    if re.search(r"%[0-9A-F]?[a-f]", value):
        return f"lower-case percent-encoding in {value!r}"
    if parts.scheme in ("http", "https") and not parts.path:
        return f"non-canonical URI {value!r} (empty path: add '/')"
    return None


def date_problem(value: str | None, kind: str) -> str | None:
    if not value:
        return f"empty {kind} date"
    if kind == "rfc822":
        match = _RFC822.match(value)
        if not match:
            return f"not an RFC 822 date with a 4-digit year: {value!r}"
        parsed = parsedate_to_datetime(value)
        if match.group(1) and _WEEKDAYS[parsed.weekday()] != match.group(1):
            return f"wrong day of the week in {value!r}"
        year = parsed.year
    else:
        if not _RFC3339.match(value):
            return f"not an RFC 3339 date-time: {value!r}"
        year = int(value[:4])
    if year < 1990:
        return f"implausible date {value!r} (before 1990)"
    return None


def language_problem(value: str | None) -> str | None:
    if value is None:
        return None
    return None if _LANGUAGE.match(value) else f"invalid language {value!r}"


def style_problem(style: str) -> str | None:
    """DangerousStyleAttr: a declaration outside the validator's list of harmless ones."""
    for declaration in filter(None, (d.strip() for d in style.split(";"))):
        prop, colon, value = declaration.partition(":")
        if not colon or prop.strip().lower() not in _SAFE_CSS or not _SAFE_CSS_VALUE.match(value.strip()):
            return f"dangerous style {declaration!r}"
    return None


class _HtmlScan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _UNSAFE_TAGS:
            self.problems.append(f"unsafe <{tag}> in HTML")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name == "style" and (problem := style_problem(value or "")):
                self.problems.append(f"<{tag} style>: {problem}")
            if name in _URL_ATTRIBUTES and value is not None:
                stripped = value.strip()
                if re.match(r"(?i)\s*(javascript|vbscript|data):", stripped):
                    self.problems.append(f"script URL {value!r} in <{tag} {name}>")
                elif not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", stripped):
                    self.problems.append(f"relative URL {value!r} in <{tag} {name}>")
                elif stripped.startswith(("http:", "https:")) and (problem := uri_problem(stripped)):
                    self.problems.append(f"<{tag} {name}>: {problem}")


def html_problems(markup: str | None) -> list[str]:
    """What the validator's safe-HTML and relative-reference checks would say."""
    scan = _HtmlScan()
    scan.feed(markup or "")
    scan.close()
    return scan.problems


def _once(parent: ElementTree.Element, tag: str, where: str, problems: list[str], *, required: bool = True) -> str:
    found = parent.findall(tag)
    if not found:
        if required:
            problems.append(f"{where}: missing {tag}")
        return ""
    if len(found) > 1:
        problems.append(f"{where}: {tag} appears {len(found)} times")
    text = found[0].text or ""
    if required and not text.strip() and not len(found[0]):
        problems.append(f"{where}: blank {tag}")
    return text


def _self_link(links: list[ElementTree.Element], where: str, problems: list[str]) -> None:
    selves = [link for link in links if link.get("rel") == "self"]
    if not selves:
        problems.append(f"{where}: missing atom:link rel=\"self\"")
    for link in selves:
        if not link.get("type"):
            problems.append(f"{where}: self link without type")
    for link in links:
        if problem := uri_problem(link.get("href")):
            problems.append(f"{where}: link: {problem}")


def rss_problems(root: ElementTree.Element) -> list[str]:
    problems: list[str] = []
    if root.get("version") != "2.0":
        problems.append(f"rss version {root.get('version')!r}, not 2.0")
    channels = root.findall("channel")
    if len(channels) != 1:
        return [*problems, f"{len(channels)} channel elements"]
    channel = channels[0]
    for tag in ("title", "link", "description"):
        _once(channel, tag, "channel", problems)
    for tag in ("language", "lastBuildDate", "pubDate", "managingEditor", "webMaster", "generator", "docs", "ttl"):
        _once(channel, tag, "channel", problems, required=False)
    if problem := uri_problem(channel.findtext("link")):
        problems.append(f"channel link: {problem}")
    if problem := language_problem(channel.findtext("language")):
        problems.append(f"channel: {problem}")
    for tag in ("lastBuildDate", "pubDate"):
        value = channel.findtext(tag)
        if value is not None and (problem := date_problem(value, "rfc822")):
            problems.append(f"channel {tag}: {problem}")
    editor = channel.findtext("managingEditor")
    if editor is not None:
        match = re.match(r"^(\S+) \((.+)\)$", editor)
        if not match or not _ADDR_SPEC.match(match.group(1)):
            problems.append(f"managingEditor {editor!r} is not 'address (Real Name)'")
    _self_link(channel.findall(f"{ATOM}link"), "channel", problems)
    guids: Counter[str] = Counter()
    for index, item in enumerate(channel.findall("item"), start=1):
        where = f"item {index}"
        title = _once(item, "title", where, problems, required=False)
        description = _once(item, "description", where, problems, required=False)
        if item.find("title") is not None and not title.strip():
            problems.append(f"{where}: blank title")
        if item.find("title") is None and item.find("description") is None:
            problems.append(f"{where}: neither title nor description")
        link = item.findtext("link")
        if link is not None and (problem := uri_problem(link)):
            problems.append(f"{where} link: {problem}")
        guid = item.find("guid")
        if guid is None:
            problems.append(f"{where}: missing guid")
        else:
            text = guid.text or ""
            guids[text] += 1
            permalink = guid.get("isPermaLink", "true")
            if permalink not in ("true", "false"):
                problems.append(f"{where}: isPermaLink {permalink!r}")
            if permalink == "true" and text.lower().startswith(("tag:", "urn:uuid:")):
                problems.append(f"{where}: guid {text!r} marked as a permalink")
            if problem := uri_problem(text, allow_tag=True):
                problems.append(f"{where} guid: {problem}")
        children = [child.tag for child in item]
        encoded = f"{CONTENT}encoded"
        if encoded in children:
            if "description" not in children or children.index("description") > children.index(encoded):
                problems.append(f"{where}: content:encoded without a description before it")
            problems += [f"{where} content:encoded: {p}" for p in html_problems(item.findtext(encoded))]
        problems += [f"{where} description: {p}" for p in html_problems(description)]
        pub_date = item.findtext("pubDate")
        if pub_date is not None and (problem := date_problem(pub_date, "rfc822")):
            problems.append(f"{where} pubDate: {problem}")
        for category in item.findall("category"):
            if not (category.text or "").strip():
                problems.append(f"{where}: blank category")
        for thumbnail in item.findall(f"{MEDIA}thumbnail"):
            if problem := uri_problem(thumbnail.get("url")):
                problems.append(f"{where} media:thumbnail: {problem}")
        problems += [f"{where}: {p}" for p in _atom_extension_problems(item)]
    problems += [f"guid {g!r} appears {n} times" for g, n in guids.items() if n > 1]
    return problems


def _atom_extension_problems(item: ElementTree.Element) -> list[str]:
    return [p for link in item.findall(f"{ATOM}link") if (p := uri_problem(link.get("href")))]


def _person_problems(person: ElementTree.Element, where: str) -> list[str]:
    problems = []
    if not (person.findtext(f"{ATOM}name") or "").strip():
        problems.append(f"{where}: author without a name")
    email = person.findtext(f"{ATOM}email")
    if email is not None and not _ADDR_SPEC.match(email):
        problems.append(f"{where}: author email {email!r} is not an address")
    uri = person.findtext(f"{ATOM}uri")
    if uri is not None and (problem := uri_problem(uri)):
        problems.append(f"{where}: author uri: {problem}")
    return problems


def _atom_links(element: ElementTree.Element, where: str) -> list[str]:
    problems = []
    seen: Counter[tuple[str, str, str]] = Counter()
    for link in element.findall(f"{ATOM}link"):
        rel = link.get("rel", "alternate")
        if rel != "hub":  # the validator does not register rel="hub" but allows it
            seen[(rel, link.get("type", ""), link.get("hreflang", ""))] += 1
        if problem := uri_problem(link.get("href")):
            problems.append(f"{where}: link: {problem}")
    problems += [f"{where}: {n} links with rel={k[0]} type={k[1] or '-'}" for k, n in seen.items() if n > 1]
    return problems


def atom_problems(root: ElementTree.Element) -> list[str]:
    problems: list[str] = []
    if problem := language_problem(root.get(XML_LANG)):
        problems.append(f"feed xml:lang: {problem}")
    feed_id = _once(root, f"{ATOM}id", "feed", problems)
    _once(root, f"{ATOM}title", "feed", problems)
    updated = _once(root, f"{ATOM}updated", "feed", problems)
    if problem := uri_problem(feed_id, allow_tag=True) or canonical_problem(feed_id):
        problems.append(f"feed id: {problem}")
    if problem := date_problem(updated, "rfc3339"):
        problems.append(f"feed updated: {problem}")
    for tag in ("logo", "icon"):
        value = root.findtext(f"{ATOM}{tag}")
        if value is not None and (problem := uri_problem(value)):
            problems.append(f"feed {tag}: {problem}")
    feed_authors = root.findall(f"{ATOM}author")
    for author in feed_authors:
        problems += _person_problems(author, "feed")
    _self_link(root.findall(f"{ATOM}link"), "feed", problems)
    problems += _atom_links(root, "feed")
    ids: Counter[str] = Counter()
    entries = root.findall(f"{ATOM}entry")
    if not entries and not feed_authors:
        problems.append("feed: missing author")
    for index, entry in enumerate(entries, start=1):
        where = f"entry {index}"
        entry_id = _once(entry, f"{ATOM}id", where, problems)
        ids[entry_id] += 1
        if problem := uri_problem(entry_id, allow_tag=True) or canonical_problem(entry_id):
            problems.append(f"{where} id: {problem}")
        _once(entry, f"{ATOM}title", where, problems)
        if problem := date_problem(_once(entry, f"{ATOM}updated", where, problems), "rfc3339"):
            problems.append(f"{where} updated: {problem}")
        published = entry.findtext(f"{ATOM}published")
        if published is not None and (problem := date_problem(published, "rfc3339")):
            problems.append(f"{where} published: {problem}")
        authors = entry.findall(f"{ATOM}author")
        if not authors and not feed_authors:
            problems.append(f"{where}: missing author (and the feed has none)")
        for author in authors:
            problems += _person_problems(author, where)
        problems += _atom_links(entry, where)
        content = entry.findall(f"{ATOM}content")
        summary = _once(entry, f"{ATOM}summary", where, problems, required=False)
        if len(content) > 1:
            problems.append(f"{where}: {len(content)} content elements")
        rels = [link.get("rel", "alternate") for link in entry.findall(f"{ATOM}link")]
        if not content and "alternate" not in rels:
            problems.append(f"{where}: neither content nor an alternate link")
        for element in content:
            kind = element.get("type", "text")
            if kind not in ("text", "html", "xhtml") and not kind.startswith("text/") and not summary:
                problems.append(f"{where}: content of type {kind} without a summary")
            if kind == "html":
                problems += [f"{where} content: {p}" for p in html_problems(element.text)]
        summary_element = entry.find(f"{ATOM}summary")
        if summary_element is not None and summary_element.get("type") == "html":
            problems += [f"{where} summary: {p}" for p in html_problems(summary)]
        for category in entry.findall(f"{ATOM}category"):
            if not (category.get("term") or "").strip():
                problems.append(f"{where}: category without a term")
        for thumbnail in entry.findall(f"{MEDIA}thumbnail"):
            if problem := uri_problem(thumbnail.get("url")):
                problems.append(f"{where} media:thumbnail: {problem}")
    problems += [f"entry id {i!r} appears {n} times" for i, n in ids.items() if n > 1]
    return problems


def _json_uri(value: Any, where: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{where} must be a string"]
    problem = uri_problem(value)
    return [f"{where}: {problem}"] if problem else []


def _json_authors(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value:
        return [f"{where}.authors must be a non-empty list"]
    problems = []
    for author in value:
        if not isinstance(author, dict) or not any(author.get(k) for k in ("name", "url", "avatar")):
            problems.append(f"{where}.authors: {author!r} has no name, url or avatar")
        elif "url" in author:
            problems += _json_uri(author["url"], f"{where}.authors.url")
    return problems


def json_feed_problems(data: bytes) -> list[str]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"not UTF-8 JSON: {exc}"]
    if not isinstance(doc, dict):
        return ["top level is not an object"]
    problems: list[str] = []
    if doc.get("version") != JSON_FEED_VERSION:
        problems.append(f"version {doc.get('version')!r}")
    if not isinstance(doc.get("title"), str) or not doc["title"].strip():
        problems.append("missing title")
    for key in ("home_page_url", "feed_url", "icon", "favicon"):
        if key in doc:
            problems += _json_uri(doc[key], key)
    if "authors" in doc:
        problems += _json_authors(doc["authors"], "feed")
    if "author" in doc:
        problems.append("feed uses the JSON Feed 1.0 'author'; 1.1 has 'authors'")
    if "language" in doc and (problem := language_problem(doc["language"])):
        problems.append(problem)
    for hub in doc.get("hubs", []):
        if not isinstance(hub, dict) or not hub.get("type") or not hub.get("url"):
            problems.append(f"hub {hub!r} needs type and url")
    items = doc.get("items")
    if not isinstance(items, list):
        return [*problems, "missing items"]
    ids: Counter[str] = Counter()
    for index, item in enumerate(items, start=1):
        where = f"item {index}"
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            problems.append(f"{where}: id must be a non-empty string")
        else:
            ids[item_id] += 1
        if not isinstance(item.get("content_html"), str) and not isinstance(item.get("content_text"), str):
            problems.append(f"{where}: neither content_html nor content_text")
        problems += [f"{where} content_html: {p}" for p in html_problems(item.get("content_html"))]
        for key in ("url", "external_url", "image", "banner_image"):
            if key in item:
                problems += _json_uri(item[key], f"{where}.{key}")
        for key in ("date_published", "date_modified"):
            if key in item and (problem := date_problem(item[key], "rfc3339")):
                problems.append(f"{where}.{key}: {problem}")
        if "tags" in item and not (isinstance(item["tags"], list) and all(isinstance(t, str) for t in item["tags"])):
            problems.append(f"{where}.tags must be a list of strings")
        if "authors" in item:
            problems += _json_authors(item["authors"], where)
        if "author" in item:
            problems.append(f"{where} uses the JSON Feed 1.0 'author'")
    problems += [f"item id {i!r} appears {n} times" for i, n in ids.items() if n > 1]
    return problems
