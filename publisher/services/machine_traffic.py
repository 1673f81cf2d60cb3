"""Telling machines from readers among pixel and click requests: a pure classifier.

Each signal and where it comes from:

- HEAD requests: a reader's mail program asks for a picture or a page with GET; a HEAD
  is a link checker looking whether the address answers (RFC 9110 section 9.3.2).
- Apple Mail Privacy Protection: since iOS 15 / macOS 12, Apple Mail fetches every remote
  picture through Apple's proxy when the message arrives, whether or not anyone reads it.
  Its fetcher sends the bare user agent "Mozilla/5.0" (no version, no platform), as the
  large senders' help pages describe it, from iCloud Private Relay's egress ranges that
  Apple publishes at https://mask-api.icloud.com/egress-ip-ranges.csv. `APPLE_EGRESS` is a
  small dated snapshot of those ranges (never fetched at run time); either signal marks
  an open as Apple's.
- Security gateways that fetch every link of a message before the reader sees it: their
  user agents name them (Barracuda, Mimecast, Proofpoint; Microsoft Defender's Safe Links
  fetches with "BingPreview").
- Link scanners that give no name: a click within `analytics.scanner_seconds` of the copy
  being made (no reader opens a mail and clicks in seconds; scanners at the receiving
  server do it as it arrives), or every link of one copy clicked within one second. The
  second needs to know the copy, so it works only while per-person analytics are on.
- Gmail's image proxy ("GoogleImageProxy"): Gmail fetches a picture when its reader opens
  the message, so it IS a reader's open; it is counted as one and noted with that reason.

Plain-text parts and feeds carry no pixel and no rewritten link, so they are never seen here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

__all__ = [
    "APPLE_EGRESS",
    "GATEWAYS",
    "Verdict",
    "classify_click",
    "classify_open",
]

APPLE_EGRESS = (
    # Vendored 2026-12-07 from Apple's list (source above) as kept by its daily mirror
    # github.com/you-oops-dev/ipranges, apple-proxy/ipv4_merged.txt at commit 0691fa0a: some larger
    # blocks (104.28.x.x, 172.225.x.x, 172.226.x.x); and Apple's own network 17.0.0.0/8
    # (ARIN: Apple Inc.), which no other sender uses.
    "17.0.0.0/8",
    "104.28.103.0/25",
    "104.28.104.0/25",
    "104.28.116.0/25",
    "104.28.132.0/25",
    "104.28.133.0/25",
    "104.28.136.128/25",
    "104.28.140.128/25",
    "104.28.147.128/25",
    "172.225.18.0/23",
    "172.225.76.0/22",
    "172.225.248.0/22",
    "172.226.188.0/22",
)

GATEWAYS = (
    ("barracuda", "barracuda"),
    ("mimecast", "mimecast"),
    ("proofpoint", "proofpoint"),
    ("bingpreview", "microsoft_safe_links"),
)
"""(substring of the user agent, lower case) -> the reason recorded."""

APPLE_USER_AGENT = "Mozilla/5.0"
GOOGLE_PROXY = "googleimageproxy"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A request's reading: a machine's (with why), or a reader's (`reason` a note, or "")."""

    machine: bool
    reason: str = ""


@cache
def _apple_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n) for n in APPLE_EGRESS)


def _from_apple(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address.version == n.version and address in n for n in _apple_networks())


def _common(method: str, user_agent: str) -> Verdict | None:
    if method.upper() == "HEAD":
        return Verdict(True, "head_request")
    agent = user_agent.lower()
    for needle, reason in GATEWAYS:
        if needle in agent:
            return Verdict(True, reason)
    return None


def classify_open(*, method: str, user_agent: str, ip: str) -> Verdict:
    """A pixel request: a machine's, Gmail's proxy (a reader, noted), or a reader's."""
    found = _common(method, user_agent)
    if found is not None:
        return found
    if user_agent.strip() == APPLE_USER_AGENT or _from_apple(ip):
        return Verdict(True, "apple_privacy_protection")
    if GOOGLE_PROXY in user_agent.lower():
        return Verdict(False, "google_image_proxy")
    return Verdict(False)


def classify_click(
    *,
    method: str,
    user_agent: str,
    at: datetime,
    made_at: datetime,
    scanner_seconds: int,
    link_id: int,
    clicked_last_second: Collection[int] = (),
    issue_links: int = 0,
) -> Verdict:
    """A click: a machine's or a reader's.

    `clicked_last_second` are the links this copy had clicked in the second before `at`
    (known only with per-person analytics); with this one they cover all `issue_links`
    (two or more) when a scanner walks the message.
    """
    found = _common(method, user_agent)
    if found is not None:
        return found
    if at - made_at < timedelta(seconds=scanner_seconds):
        return Verdict(True, "clicked_on_arrival")
    if issue_links >= 2 and len({*clicked_last_second, link_id}) >= issue_links:
        return Verdict(True, "every_link_at_once")
    return Verdict(False)
