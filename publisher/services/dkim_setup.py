"""DKIM from the desk: a key made for the publication, the record to publish, and a look
in DNS to see whether it is there.

`generate_key` writes a new RSA 2048 private key beside config.toml (`dkim-<selector>.pem`,
mode 0600, never over an existing file) and saves `[delivery.dkim]` to use it through
`settings.save_settings`, so the same lock, fingerprint, checks and audit apply; when the
save is refused, the new key file is removed again. The TXT record to publish is
`settings_view`'s `dkim_records` (preflight's own record, so `publisher doctor` and the
send checks expect the same value). `check_dns` asks DNS for it and compares.

A key file holds a secret: backups leave it out (see services.backup), and it never goes
into the audit log, which names only the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine

from publisher.config import load_config
from publisher.errors import ConfigError, Conflict
from publisher.mail import preflight
from publisher.mail.dkim_signing import DkimSigner
from publisher.services.settings import Saved, save_settings, write_atomically

__all__ = ["check_dns", "generate_key"]

_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def generate_key(
    config_path: Path, *, domain: str, selector: str, fingerprint_seen: str, who: str, engine: Engine,
    now: datetime, env: Mapping[str, str] | None = None,
) -> Saved:
    """A new key for `selector._domainkey.domain`, written and put to use; see the module."""
    domain, selector = domain.strip().lower().rstrip("."), selector.strip().lower()
    problems = []
    if not _DOMAIN.fullmatch(domain):
        problems.append(f"{config_path.name}: [delivery.dkim] domain must be a domain such as example.org, "
                        f"got {domain!r}")
    if not _SELECTOR.fullmatch(selector):
        problems.append(f"{config_path.name}: [delivery.dkim] selector must be letters, digits and hyphens, "
                        f"such as 2026dec, got {selector!r}")
    if problems:
        raise ConfigError("\n".join(problems), problems=problems)
    key_path = config_path.parent / f"dkim-{selector}.pem"
    if key_path.exists():
        raise Conflict(f"{key_path.name} exists already: choose another selector (a date, such as 2026dec), so "
                       "that the key published for the old one keeps working until mail signed with it is read")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    write_atomically(key_path, pem, mode=0o600)
    try:
        return save_settings(
            config_path, {"dkim_domain": domain, "dkim_selector": selector, "dkim_key_file": key_path.name},
            fingerprint_seen=fingerprint_seen, who=who, engine=engine, now=now, env=env,
        )
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise


def check_dns(config_path: Path, resolver: dns.resolver.Resolver | None = None) -> list[preflight.Check]:
    """Whether DNS publishes each DKIM key config.toml names now (preflight's comparison)."""
    config = load_config(config_path)
    signer = DkimSigner.from_config(config)
    if signer is None:
        raise ConfigError("config.toml: [delivery.dkim] domain is empty: set up DKIM signing first")
    records = [r for r in preflight.dns_records(config, signer) if r.kind == "DKIM"]
    return preflight.dns_checks(records, preflight.look_up([r.name for r in records], resolver))
