"""What the sender rules ask DNS: TXT, addresses and mail exchangers behind one small
interface (`Dns`), the live resolver (`LiveDns`), and an SPF evaluator that says whether a
record lets a sender through (`spf_names`).

The evaluator follows what decides the question for a newsletter: ip4 and ip6 ranges, a
and mx (with their names), include and redirect, at most SPF_LOOKUPS names as RFC 7208
4.6.4 allows (a record that needs more, or loops, is a permanent error for receivers too).
Mechanisms that fail or are neutral (-, ~, ?) never let a host through; macros and exists
are not evaluated, so a record that names the sender only through them is reported as not
naming it. Nothing waits without a deadline: each look-up has `timeout` seconds.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol

import dns.exception
import dns.rdata
import dns.resolver

__all__ = ["DNS_TIMEOUT", "SPF_LOOKUPS", "Dns", "LiveDns", "Unanswered", "spf_names", "spf_records"]

DNS_TIMEOUT = 3.0
"""Seconds for each DNS look-up, retries included."""
SPF_LOOKUPS = 10
"""Names an SPF check may look up (RFC 7208 4.6.4): past it, receivers give up too."""


class Unanswered(Exception):
    """DNS gave no usable answer (a timeout, no server): the rule cannot be judged, not failed."""


class Dns(Protocol):
    """The look-ups the rules make; each raises Unanswered when DNS does not answer."""

    def txt(self, name: str) -> list[str] | None:
        """The TXT strings at `name` (a record split in several strings joined), None: no such record."""

    def addresses(self, name: str) -> list[str]:
        """The A and AAAA addresses of `name` ([] for none)."""

    def mx(self, name: str) -> list[str]:
        """The mail exchangers' names of `name` ([] for none)."""


class LiveDns:
    """`Dns` through dnspython (the system's resolver, or the one given), `timeout` seconds a name."""

    def __init__(self, resolver: dns.resolver.Resolver | None = None, *, timeout: float = DNS_TIMEOUT) -> None:
        if resolver is None:
            resolver = dns.resolver.Resolver()
            resolver.timeout = resolver.lifetime = timeout
        self._resolver = resolver
        self._timeout = timeout

    def _ask(self, name: str, kind: str) -> list[dns.rdata.Rdata] | None:
        try:
            return list(self._resolver.resolve(name, kind, lifetime=self._timeout, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.Timeout as exc:
            raise Unanswered(f"{name}: no answer within {self._timeout:g} s") from exc
        except dns.exception.DNSException as exc:
            raise Unanswered(f"{name}: {exc or type(exc).__name__}") from exc

    def txt(self, name: str) -> list[str] | None:
        found = self._ask(name, "TXT")
        if found is None:
            return None
        return [b"".join(r.strings).decode("utf-8", "replace") for r in found]  # type: ignore[attr-defined]

    def addresses(self, name: str) -> list[str]:
        return [r.to_text() for kind in ("A", "AAAA") for r in (self._ask(name, kind) or [])]

    def mx(self, name: str) -> list[str]:
        return [str(r.exchange).rstrip(".") for r in (self._ask(name, "MX") or [])]  # type: ignore[attr-defined]


def spf_records(texts: list[str] | None) -> list[str]:
    """The v=spf1 records among TXT strings."""
    return [t for t in texts or [] if t.strip().lower().startswith("v=spf1")]


@dataclass
class _SpfWalk:
    dns: Dns
    include: str
    addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    lookups: int = 0

    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > SPF_LOOKUPS:
            raise _TooMany

    def names(self, domain: str) -> bool:
        """Whether the SPF record of `domain` names the include or one of the addresses."""
        records = spf_records(self.dns.txt(domain))
        if len(records) != 1:
            return False
        for term in records[0].split()[1:]:
            term = term.lower().lstrip("+")
            if term.startswith(("-", "~", "?")):
                continue  # a mechanism that fails or is neutral never lets the host through
            kind, _, value = term.partition(":")
            if kind.startswith("redirect="):
                kind, value = "redirect", kind.partition("=")[2]
            if kind in ("include", "redirect"):
                if self.include and value == self.include:
                    return True
                self._count()
                if self.names(value):
                    return True
            elif kind in ("ip4", "ip6") and self.addresses:
                network = ipaddress.ip_network(value, strict=False)
                if any(a in network for a in self.addresses if a.version == network.version):
                    return True
            elif kind in ("a", "mx") or kind.startswith(("a/", "mx/")):
                if not self.addresses:
                    continue
                host = value.partition("/")[0] or domain
                self._count()
                hosts = [host] if kind.startswith("a") else self.dns.mx(host)
                for name in hosts:
                    if any(ipaddress.ip_address(found) in self.addresses for found in self.dns.addresses(name)):
                        return True
        return False


class _TooMany(Exception):
    pass


def spf_names(dns_view: Dns, domain: str, *, include: str = "", addresses: tuple[str, ...] = ()) -> bool | None:
    """Whether `domain`'s SPF lets the sender through: its record (or one it includes or
    redirects to) has `include:<include>` or names one of `addresses`. None when it takes
    more than SPF_LOOKUPS look-ups (receivers answer permerror then)."""
    walk = _SpfWalk(dns_view, include.lower(), tuple(ipaddress.ip_address(a) for a in addresses))
    try:
        return walk.names(domain)
    except _TooMany:
        return None
    except ValueError:
        return False  # a malformed ip4/ip6 term: receivers reject the record too
