"""Opens and clicks in a newsletter's HTML part: the pixel, the click links and their tokens.

Nothing here changes a message unless `analytics.enabled` is on (invariant 7). When it is,
an issue's HTML is changed once, where its template is encoded (`tracked_html`, called by
the delivery engine for the issue's snapshot): every `<a href="http...">` leads through
`/c/<token>` and a 1x1 picture `/o/<token>.gif` goes before `</body>`. The text part, the
feeds, the web archive, previews and test copies are never changed.

Tokens, HMAC-SHA256 under `PUBLISHER_SECRET`, each salted for its use:

- a link token `<issue>-<link>-<mac>` names one link of one issue (its number in the
  store's `links`), made once per issue;
- a copy token `<issue>-<seconds>-<message key>-<mac>` is the one per-recipient value,
  spliced like the unsubscribe link (`COPY_PLACEHOLDER`): the moment the copy was made
  (so that a click seconds after it can be told to be a scanner's) and the copy's message
  key (random, like its Message-ID, which the unsubscribe link carries too: it names a
  ledger row, never a subscriber id; invariant 8). The key is what lets a copy's opens
  and clicks count once, and by the subject it carried, with or without per-person
  analytics; only with them is the request kept against the copy (see
  `publisher.store.engagement`). Mail sent before carried an empty key while per-person
  analytics were off: its requests count in the totals only.

A click link is `/c/<link token>_<copy token>`; the pixel is `/o/<copy token>.gif`. Both
must verify and name the same issue, or the request is "not valid": the app then answers a
plain page linking to the publication, never a redirect, and counts nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import html as html_lib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from publisher.config import Config
from publisher.errors import TokenError
from publisher.mail.mime import COPY_PLACEHOLDER
from publisher.store import engagement

__all__ = [
    "COPY_PLACEHOLDER",
    "Copy",
    "LinkTarget",
    "copy_token",
    "link_token",
    "links_in",
    "rewrite",
    "tracked_html",
    "verify_click",
    "verify_open",
]


_HREF_RE = re.compile(r'(<a\b[^>]*?\bhref=")(https?://[^"]+)(")', re.IGNORECASE)
_LINK_RE = re.compile(r"^([1-9][0-9]{0,9})-([1-9][0-9]{0,5})-([0-9a-f]{20})$")
_COPY_RE = re.compile(r"^([1-9][0-9]{0,9})-([0-9]{1,12})-([0-9a-z.]{0,64})-([0-9a-f]{20})$")
_BODY_END_RE = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Copy:
    """What a copy token says: the issue, when the copy was made, and its message key
    (empty in mail sent before copies were counted once, while per-person analytics were off)."""

    issue_id: int
    made_at: datetime
    message_key: str


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """A verified click: the link's number in the issue, and the copy it came from."""

    link_id: int
    copy: Copy


def _mac(secret: str, purpose: str, text: str) -> str:
    if not secret:
        raise ValueError("an empty secret cannot sign tokens")
    key = hashlib.sha256(f"publisher.analytics.{purpose}\0{secret}".encode()).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:20]


def link_token(secret: str, issue_id: int, link_id: int) -> str:
    """The signed name of link `link_id` of issue `issue_id`."""
    body = f"{issue_id}-{link_id}"
    return f"{body}-{_mac(secret, 'link', body)}"


def copy_token(config: Config, secret: str, issue_id: int, message_key: str, made_at: datetime) -> str:
    """The per-recipient token of one copy; "" while analytics are off (nothing to splice)."""
    if not config["analytics.enabled"]:
        return ""
    body = f"{issue_id}-{int(made_at.timestamp())}-{message_key}"
    return f"{body}-{_mac(secret, 'copy', body)}"


def _verify_copy(secret: str, token: str) -> Copy:
    match = _COPY_RE.fullmatch(token)
    if match is None:
        raise TokenError("not a valid link")
    body = token.rpartition("-")[0]
    if not hmac.compare_digest(match.group(4), _mac(secret, "copy", body)):
        raise TokenError("not a valid link")
    made_at = datetime.fromtimestamp(int(match.group(2)), UTC)
    return Copy(int(match.group(1)), made_at, match.group(3))


def verify_open(secret: str, token: str) -> Copy:
    """The copy a pixel token names; TokenError unless it is exactly what was signed."""
    return _verify_copy(secret, token.removesuffix(".gif"))


def verify_click(secret: str, token: str) -> LinkTarget:
    """The link and copy a click token names; TokenError unless both parts verify and agree."""
    link_part, sep, copy_part = token.partition("_")
    match = _LINK_RE.fullmatch(link_part)
    if not sep or match is None:
        raise TokenError("not a valid link")
    if not hmac.compare_digest(match.group(3), _mac(secret, "link", link_part.rpartition("-")[0])):
        raise TokenError("not a valid link")
    copy = _verify_copy(secret, copy_part)
    if copy.issue_id != int(match.group(1)):
        raise TokenError("not a valid link")
    return LinkTarget(int(match.group(2)), copy)


def links_in(html: str) -> list[str]:
    """The http(s) links of an HTML part, unescaped, in order, each once."""
    return list(dict.fromkeys(html_lib.unescape(m.group(2)) for m in _HREF_RE.finditer(html)))


def rewrite(html: str, *, site_url: str, secret: str, issue_id: int, numbers: dict[str, int]) -> str:
    """`html` with each numbered link led through `/c/` and the pixel before `</body>`.

    Pure: `numbers` (URL -> link number) comes from the store. A link not numbered is
    left as it is.
    """
    base = site_url.rstrip("/")

    def lead(match: re.Match[str]) -> str:
        number = numbers.get(html_lib.unescape(match.group(2)))
        if number is None:
            return match.group(0)
        token = link_token(secret, issue_id, number)
        return f"{match.group(1)}{base}/c/{token}_{COPY_PLACEHOLDER}{match.group(3)}"

    led = _HREF_RE.sub(lead, html)
    pixel = (
        f'<img src="{base}/o/{COPY_PLACEHOLDER}.gif" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px;overflow:hidden">'
    )
    found = list(_BODY_END_RE.finditer(led))
    if not found:
        return led + pixel
    at = found[-1].start()
    return led[:at] + pixel + led[at:]


def tracked_html(config: Config, db: Engine, secret: str, issue_id: int, html: str) -> str:
    """An issue's HTML as it is sent: unchanged while analytics are off; otherwise its links
    numbered in the store (the first time) and rewritten, and the pixel added."""
    if not config["analytics.enabled"] or not secret:
        return html
    numbers = engagement.record_links(db, issue_id, links_in(html))
    return rewrite(html, site_url=config.site_url, secret=secret, issue_id=issue_id, numbers=numbers)
