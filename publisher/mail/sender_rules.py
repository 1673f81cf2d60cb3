"""The big mailbox providers' rules for bulk senders (Gmail and Yahoo, February 2024), judged.

    SPF         the return-path domain publishes SPF that names the sending host: the
                provider's include, or the SMTP relay's address (ip4/ip6, a, mx, include
                and redirect followed, at most SPF_LOOKUPS names, as RFC 7208 allows)
    DKIM        the messages are signed by a key the From domain's DNS publishes, with a
                d= domain that aligns with the From domain (publisher's own key, or the
                provider's where its selectors are fixed: Resend's, SendGrid's)
    DMARC       _dmarc.<From domain> (or of its organisational domain) publishes
                v=DMARC1 with a p= (any), and DKIM or SPF aligns under its adkim/aspf
    return path the envelope sender's domain aligns with the From domain, so that SPF
                counts toward DMARC too; a provider's own default return path cannot be
                judged without DNS, which shows a custom one where the provider names it
                (Postmark's pm-bounces.<domain>)
    one-click   List-Unsubscribe with an https address and List-Unsubscribe-Post:
                List-Unsubscribe=One-Click in the message as it leaves, both under its
                DKIM signature (RFC 8058)

Alignment is relaxed (RFC 7489 3.1) unless the DMARC record asks for strict: two domains
align when their organisational domains are the same, the registrable domain under the
Public Suffix List (`news.example.org` and `example.org` align; `example.org` and
`example.net` do not; `a.co.uk` and `b.co.uk` do not). The list is the snapshot that the
`publicsuffixlist` package ships: nothing is fetched.

`sender_setup` reads who sends from the config (the From domain, the return path, the
DKIM domain, the provider's include or the relay host): pure. `rules` judges a setup, the
message as a reader gets it, and what DNS answers; DNS comes in through the small `Dns`
interface (`sender_dns`, with the SPF evaluator), so tests answer from a DNS server on
loopback and `LiveDns` asks the system's resolver. None of these rules stops a send: they
say what to publish or change; `publisher doctor` reports a broken one as a failure (a
provider's own return path only as a warning while DKIM carries DMARC).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from email.policy import compat32

from publicsuffixlist import PublicSuffixList

from publisher.config import Config, provider_said
from publisher.mail.dkim_signing import DkimSigner
from publisher.mail.mime import split_mailbox
from publisher.mail.sender_dns import DNS_TIMEOUT, SPF_LOOKUPS, Dns, LiveDns, Unanswered, spf_names, spf_records

__all__ = [
    "DKIM_RULE", "DMARC_RULE", "DNS_TIMEOUT", "ONE_CLICK_RULE", "PROVIDERS", "RETURN_PATH_RULE", "SPF_LOOKUPS",
    "SPF_RULE", "Dns", "LiveDns", "ProviderRules", "Rule", "SenderSetup", "Unanswered",
    "aligned", "dmarc_record", "one_click_rule", "organisational_domain", "rules", "sender_setup", "spf_names",
]

ONE_CLICK = "List-Unsubscribe=One-Click"
SPF_RULE = "Sender rules: SPF names the sending host"
DKIM_RULE = "Sender rules: DKIM aligned with From"
DMARC_RULE = "Sender rules: DMARC published and aligned"
RETURN_PATH_RULE = "Sender rules: return path aligned with From"
ONE_CLICK_RULE = "Sender rules: one-click unsubscribe"

_PSL = PublicSuffixList()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule's verdict, as `preflight.Check` holds it (`ok` None: could not be judged here)."""

    name: str
    ok: bool | None
    detail: str


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """What a provider does unless the author sets up their own domain with it."""

    spf_include: str
    """The include its SPF record needs ("" for a relay, whose address SPF names)."""
    return_path: str
    """The envelope sender's domain it uses by default ("{from}": the From domain's)."""
    return_path_fix: str
    """How to give it a return path of the author's own domain."""
    signs_dkim: str
    """How it signs when publisher does not ([delivery.dkim] unset)."""
    custom_return_path: str = ""
    """The name of the return path of the author's own that it asks for, where DNS can
    show it is set up ("{domain}": the organisational domain); "" when DNS cannot tell."""
    dkim_selectors: tuple[str, ...] = ()
    """The selectors of the DKIM keys it asks the author to publish, where they are fixed."""


PROVIDERS: Mapping[str, ProviderRules] = {
    "postmark": ProviderRules(
        "spf.mtasv.net", "pm.mtasv.net",
        "set a custom Return-Path in Postmark (Sender Signatures > your domain > Return-Path: "
        "pm-bounces.{domain}, a CNAME to pm.mtasv.net)",
        "Postmark signs with your domain once its DKIM record is published (Sender Signatures > DNS settings)",
        "pm-bounces.{domain}",
    ),
    "sendgrid": ProviderRules(
        "sendgrid.net", "sendgrid.net",
        "authenticate {domain} in SendGrid (Settings > Sender Authentication): its CNAMEs give a return path "
        "under your domain",
        "SendGrid signs with your domain once it is authenticated (Settings > Sender Authentication)",
        dkim_selectors=("s1", "s2"),
    ),
    "mailgun": ProviderRules(
        "mailgun.org", "{mailgun}",
        "use a Mailgun sending domain under {domain} (mg.{domain}) in [delivery.mailgun] domain",
        "Mailgun signs with its sending domain ([delivery.mailgun] domain)",
    ),
    "ses": ProviderRules(
        "amazonses.com", "amazonses.com",
        "set a custom MAIL FROM domain in SES (for example mail.{domain}, with the MX and SPF records SES shows)",
        "SES signs with your domain once Easy DKIM is verified for it",
    ),
    "resend": ProviderRules(
        "amazonses.com", "send.{from}",
        "verify {domain} in Resend (Domains): its return path is send.{domain}",
        "Resend signs with your domain once it is verified (Domains)",
        dkim_selectors=("resend",),
    ),
    "smtp": ProviderRules(
        "", "{from}",
        "send with an envelope sender at {domain} (your relay's settings)",
        "your mail server may sign (Fastmail, Microsoft 365 and Google Workspace do, once set up); "
        "or set [delivery.dkim] to sign here",
    ),
}
"""Per provider, the defaults these rules compare with."""


def organisational_domain(domain: str) -> str:
    """The registrable domain of `domain` under the Public Suffix List (itself when it is
    one, or a public suffix)."""
    name = domain.strip().rstrip(".").lower()
    return _PSL.privatesuffix(name) or name


def aligned(one: str, other: str, *, strict: bool = False) -> bool:
    """Whether two domains align for DMARC: the same name (strict), or the same
    organisational domain (relaxed)."""
    a, b = one.strip().rstrip(".").lower(), other.strip().rstrip(".").lower()
    if not a or not b:
        return False
    return a == b if strict else organisational_domain(a) == organisational_domain(b)


@dataclass(frozen=True, slots=True)
class SenderSetup:
    """Who the mail says it is from, and who the receivers see sending it."""

    provider: str
    from_domain: str
    return_path: str
    """The envelope sender's domain (where SPF is looked up)."""
    return_path_own: bool
    """The author chose it (`bounces.return_path_domain`) or it is the From domain's, as
    opposed to the provider's own default."""
    dkim_domain: str
    """The d= of publisher's own signature; "" when the provider (or nobody) signs."""
    spf_include: str
    relay_host: str
    """The SMTP relay's host name (smtp only), whose address SPF must name."""


def sender_setup(config: Config, signer: DkimSigner | None) -> SenderSetup:
    """The setup as the config describes it."""
    provider = str(config["delivery.provider"])
    address = split_mailbox(str(config["newsletter.from"]))[1]
    from_domain = address.rpartition("@")[2].strip().lower()
    known = PROVIDERS.get(provider)
    # The per-recipient return path (VERP) is the envelope sender only where publisher speaks
    # SMTP itself; an HTTP provider keeps its own (SES forwards the feedback there, no more).
    chosen = str(config.values.get("bounces.return_path_domain") or "").strip().lower()
    if chosen and (known is None or not known.spf_include):
        return_path, own = chosen, True
    elif known is not None:
        mailgun = str(config.values.get("delivery.mailgun.domain") or "").strip().lower() or from_domain
        return_path = known.return_path.format(**{"from": from_domain, "mailgun": mailgun})
        own = "{" in known.return_path
    else:
        return_path, own = from_domain, True
    return SenderSetup(
        provider=provider, from_domain=from_domain, return_path=return_path, return_path_own=own,
        dkim_domain=signer.domain.lower() if signer is not None else "",
        spf_include=known.spf_include if known is not None else "",
        relay_host=str(config["delivery.smtp.host"]).strip() if provider == "smtp" else "",
    )


def dmarc_record(dns_view: Dns, from_domain: str) -> tuple[str, dict[str, str]] | None:
    """The DMARC record that governs `from_domain` (its own, else its organisational
    domain's, RFC 7489 6.6.3): (where, tags), None when there is none."""
    org = organisational_domain(from_domain)
    for domain in dict.fromkeys((from_domain, org)):
        records = [t for t in dns_view.txt(f"_dmarc.{domain}") or [] if t.strip().lower().startswith("v=dmarc1")]
        if records:
            pairs = (part.split("=", 1) for part in records[0].split(";") if "=" in part)
            return f"_dmarc.{domain}", {k.strip().lower(): v.strip().lower() for k, v in pairs}
    return None


def one_click_rule(message: bytes | None) -> Rule:
    """List-Unsubscribe (https) and List-Unsubscribe-Post in the message as a reader gets it."""
    name = ONE_CLICK_RULE
    if message is None:
        return Rule(name, None, "No message to read.")
    headers = BytesHeaderParser(policy=compat32).parsebytes(message)
    link = str(headers.get("List-Unsubscribe", "")).strip()
    post = str(headers.get("List-Unsubscribe-Post", "")).strip()
    if not link:
        return Rule(name, False, "The message has no List-Unsubscribe header: Gmail and Yahoo want it on every "
                                 "newsletter; keep publication.url set so that publisher can write it.")
    if "<https://" not in link:
        return Rule(name, False, f"List-Unsubscribe is {link}: one-click needs an https address; serve the "
                                 "desk over https and set publication.url (or server.public_url) to https://...")
    if post != ONE_CLICK:
        return Rule(name, False, f"List-Unsubscribe-Post must be “{ONE_CLICK}”, got “{post or 'nothing'}”.")
    for signature in headers.get_all("DKIM-Signature") or []:
        # RFC 8058 3.2: a signature must cover both, or a receiver may ignore the one-click POST.
        signed = {h.strip().lower() for h in _dkim_tags(str(signature)).get("h", "").split(":")}
        if not {"list-unsubscribe", "list-unsubscribe-post"} <= signed:
            return Rule(name, False, "The DKIM signature does not cover List-Unsubscribe and List-Unsubscribe-Post "
                                     "(RFC 8058): sign them both (publisher's own [delivery.dkim] signature does).")
    return Rule(name, True, f"List-Unsubscribe {link} with List-Unsubscribe-Post: {ONE_CLICK}.")


def _dkim_tags(value: str) -> dict[str, str]:
    """The tag=value pairs of a DKIM-Signature, folding whitespace dropped."""
    pairs = (part.split("=", 1) for part in value.split(";") if "=" in part)
    return {k.strip().lower(): "".join(v.split()) for k, v in pairs}


def _dkim_rule(setup: SenderSetup, key_published: bool | None) -> Rule:
    name = DKIM_RULE
    if not setup.dkim_domain:
        how = PROVIDERS[setup.provider].signs_dkim if setup.provider in PROVIDERS else "your provider may sign"
        if key_published is False:  # the provider's fixed selectors publish nothing at the From domain
            selectors = PROVIDERS[setup.provider].dkim_selectors
            names = " or ".join(f"{selector}._domainkey.{setup.from_domain}" for selector in selectors)
            return Rule(name, False, f"No DKIM key at {names}, so {provider_said(setup.provider)} signs with a "
                                     f"domain of its own, which does not align with {setup.from_domain}: {how}; "
                                     "publish the records its dashboard shows.")
        return Rule(name, None, f"publisher does not sign ([delivery.dkim] is unset): {how}. Check that it signs "
                                f"with d={setup.from_domain} or a subdomain of "
                                f"{organisational_domain(setup.from_domain)}.")
    if not aligned(setup.dkim_domain, setup.from_domain):
        return Rule(name, False, f"Signed with d={setup.dkim_domain}, which does not align with the From domain "
                                 f"{setup.from_domain}: set [delivery.dkim] domain to {setup.from_domain} (or a "
                                 f"subdomain of {organisational_domain(setup.from_domain)}) and publish its key "
                                 "there.")
    if key_published is False:
        return Rule(name, False, f"d={setup.dkim_domain} aligns with {setup.from_domain}, but DNS does not publish "
                                 "the signing key, so the signature fails: publish the DKIM record shown.")
    where = "" if key_published else " (the key in DNS is not looked up in a plain check)"
    return Rule(name, True, f"Signed with d={setup.dkim_domain}, aligned with {setup.from_domain}{where}.")


def _provider_signs(setup: SenderSetup, dns_view: Dns, published: bool | None) -> tuple[SenderSetup, bool | None]:
    """Where publisher does not sign and the provider's selectors are fixed (Resend's
    `resend`, SendGrid's `s1`/`s2`): the setup signed with the From domain (or its
    organisational domain) when DNS publishes a key there; False when it publishes none."""
    known = PROVIDERS.get(setup.provider)
    if setup.dkim_domain or known is None or not known.dkim_selectors:
        return setup, published
    for domain in dict.fromkeys((setup.from_domain, organisational_domain(setup.from_domain))):
        for selector in known.dkim_selectors:
            texts = dns_view.txt(f"{selector}._domainkey.{domain}") or []
            if any(re.search(r"(^|;)\s*p=[A-Za-z0-9+/]", t) for t in texts):
                return replace(setup, dkim_domain=domain), True
    return setup, False


def _return_path_rule(setup: SenderSetup, dns_view: Dns | None) -> tuple[Rule, SenderSetup, bool]:
    """The return-path rule, the setup with the return path DNS shows the author set up (a
    provider's custom one, such as Postmark's pm-bounces.<domain>), and whether that one is
    delegated to the provider (a CNAME to it: SPF is then the provider's own)."""
    name = RETURN_PATH_RULE
    if aligned(setup.return_path, setup.from_domain):
        return Rule(name, True, f"The envelope sender's domain {setup.return_path} aligns with "
                                f"{setup.from_domain}."), setup, False
    org = organisational_domain(setup.from_domain)
    known = PROVIDERS.get(setup.provider)
    if known is None or setup.return_path_own:
        return Rule(name, False, f"The envelope sender's domain {setup.return_path} does not align with "
                                 f"{setup.from_domain}, so SPF does not count toward DMARC: set "
                                 f"bounces.return_path_domain to a subdomain of {org}."), setup, False
    fix = known.return_path_fix.format(domain=org)
    default = (f"{provider_said(setup.provider, start=True)}'s own return path ({setup.return_path}) does not "
               f"align with {setup.from_domain}, so SPF does not count toward DMARC")
    if dns_view is None:
        return Rule(name, None, f"{default} unless you set one of your own: {fix} (the check with DNS looks "
                                "for it)."), setup, False
    if not known.custom_return_path:
        return Rule(name, None, f"{default} unless you set one of your own, which DNS cannot show: {fix}."), \
            setup, False
    custom = known.custom_return_path.format(domain=org)
    if not dns_view.addresses(custom):
        return Rule(name, False, f"{default}, and {custom} is not in DNS: {fix}."), setup, False
    return (
        Rule(name, True, f"{custom} points to {provider_said(setup.provider)}: with it set as the return path there, "
                         f"bounces come back to a domain aligned with {setup.from_domain}."),
        replace(setup, return_path=custom, return_path_own=True), True,
    )


def _spf_rule(setup: SenderSetup, dns_view: Dns, *, delegated: bool = False) -> tuple[Rule, bool]:
    """The SPF rule, and whether SPF passes for the return path."""
    name = SPF_RULE
    domain = setup.return_path
    if delegated:
        return Rule(name, True, f"{domain} points to {provider_said(setup.provider)}, whose SPF names its "
                                "servers."), True
    if not setup.return_path_own and not aligned(domain, setup.from_domain):
        return Rule(name, True, f"{provider_said(setup.provider, start=True)} sends with its own return path "
                                f"({domain}), whose SPF names its servers."), True
    if setup.relay_host:
        try:
            found = ipaddress.ip_address(setup.relay_host)
            addresses: tuple[str, ...] = (str(found),)
        except ValueError:
            addresses = tuple(dns_view.addresses(setup.relay_host))
        if not addresses:
            return Rule(name, None, f"{setup.relay_host} has no address in DNS to look for in SPF."), False
        if any(not ipaddress.ip_address(a).is_global for a in addresses):
            return Rule(name, None, f"The relay {setup.relay_host} is on this machine or network: the SPF record "
                                    f"at {domain} must name the public address it sends out from (ip4:...)."), False
        verdict = spf_names(dns_view, domain, addresses=addresses)
        wanted = "ip4:" + addresses[0] if ":" not in addresses[0] else "ip6:" + addresses[0]
        what = f"the relay {setup.relay_host} ({', '.join(addresses)})"
    else:
        if not setup.spf_include:
            return Rule(name, None, f"No known SPF include for {provider_said(setup.provider)}."), False
        verdict = spf_names(dns_view, domain, include=setup.spf_include)
        wanted = f"include:{setup.spf_include}"
        what = f"{provider_said(setup.provider)} (include:{setup.spf_include})"
    records = spf_records(dns_view.txt(domain))
    if not records:
        return Rule(name, False, f"{domain} publishes no SPF record: publish a TXT record there such as "
                                 f"“v=spf1 {wanted} ~all”."), False
    if len(records) > 1:
        return Rule(name, False, f"{domain} publishes {len(records)} SPF records: receivers ignore them all; "
                                 f"merge them into one that has {wanted}."), False
    if verdict is None:
        return Rule(name, False, f"The SPF record at {domain} needs more than {SPF_LOOKUPS} look-ups: receivers "
                                 "give up on it; remove includes you no longer use."), False
    if not verdict:
        return Rule(name, False, f"The SPF record at {domain} does not name {what}: add {wanted} before its "
                                 f"~all (it reads “{records[0]}”)."), False
    return Rule(name, True, f"The SPF record at {domain} names {what}."), True


def _dmarc_rule(setup: SenderSetup, dns_view: Dns, *, spf_passes: bool, dkim_passes: bool | None) -> Rule:
    name = DMARC_RULE
    found = dmarc_record(dns_view, setup.from_domain)
    org = organisational_domain(setup.from_domain)
    if found is None:
        return Rule(name, False, f"No DMARC record at _dmarc.{setup.from_domain} or _dmarc.{org}: Gmail and Yahoo "
                                 f"want one from bulk senders; publish a TXT record at _dmarc.{org} such as "
                                 f"“v=DMARC1; p=none; rua=mailto:postmaster@{org}”.")
    where, tags = found
    if tags.get("p") not in ("none", "quarantine", "reject"):
        return Rule(name, False, f"The DMARC record at {where} has no valid p= tag: add p=none (or quarantine).")
    dkim_ok = bool(setup.dkim_domain) and dkim_passes is not False and aligned(
        setup.dkim_domain, setup.from_domain, strict=tags.get("adkim") == "s")
    spf_ok = spf_passes and aligned(setup.return_path, setup.from_domain, strict=tags.get("aspf") == "s")
    if dkim_ok or spf_ok:
        how = " and ".join(x for x, y in (("DKIM", dkim_ok), ("SPF", spf_ok)) if y)
        return Rule(name, True, f"{where} publishes p={tags['p']}; {how} aligns with {setup.from_domain}.")
    if not setup.dkim_domain and not spf_ok:
        return Rule(name, None, f"{where} publishes p={tags['p']}; SPF does not align with {setup.from_domain}, so "
                                "DMARC rests on your provider's DKIM signature: check it signs with your domain.")
    strict = " (the record asks for strict alignment: adkim=s / aspf=s)" if "s" in (
        tags.get("adkim"), tags.get("aspf")) else ""
    return Rule(name, False, f"{where} publishes p={tags['p']}, but neither DKIM (d={setup.dkim_domain or 'none'}) "
                             f"nor the return path ({setup.return_path}) aligns with {setup.from_domain}{strict}: "
                             "sign with your own domain, or relax the record to adkim=r.")


def rules(
    setup: SenderSetup, message: bytes | None, dns_view: Dns | None = None, *, dkim_key_published: bool | None = None,
) -> list[Rule]:
    """Every rule for `setup` and `message`; with `dns_view`, the ones DNS decides too
    (`dkim_key_published`: whether DNS publishes the signing key, as `preflight` found)."""
    if dns_view is None:
        return_path, _, _ = _return_path_rule(setup, None)
        return [_dkim_rule(setup, dkim_key_published), return_path, one_click_rule(message)]
    with contextlib.suppress(Unanswered):  # the provider's key stays unknown: the rule says to check its dashboard
        setup, dkim_key_published = _provider_signs(setup, dns_view, dkim_key_published)
    try:
        return_path, setup, delegated = _return_path_rule(setup, dns_view)
    except Unanswered as exc:
        return_path, delegated = Rule(RETURN_PATH_RULE, None, f"Could not be looked up: {exc}."), False
    try:
        spf, spf_passes = _spf_rule(setup, dns_view, delegated=delegated)
    except Unanswered as exc:
        spf = Rule(SPF_RULE, None, f"Could not be looked up: {exc}.")
        spf_passes = False
    try:
        dmarc = _dmarc_rule(setup, dns_view, spf_passes=spf_passes, dkim_passes=dkim_key_published)
    except Unanswered as exc:
        dmarc = Rule(DMARC_RULE, None, f"Could not be looked up: {exc}.")
    return [spf, _dkim_rule(setup, dkim_key_published), dmarc, return_path, one_click_rule(message)]
