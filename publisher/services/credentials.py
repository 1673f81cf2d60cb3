"""Does the mail provider take these credentials? Asked at a settings save, without sending.

The calls are `publisher doctor`'s own (`doctor.CREDENTIAL_CHECKS`: Postmark's `GET /server`,
SendGrid's `GET /v3/scopes`, Mailgun's domain, Resend's domains, SES's account, an SMTP
login ended before any message), so the desk and the doctor judge a key by one rule.
`check` raises ConfigError, naming the secret, when the provider refuses (a save then
writes nothing and the old key keeps working); when the provider cannot be reached at all
it returns a sentence saying the key went unchecked, and the save goes ahead.
"""

from __future__ import annotations

import httpx

from publisher.config import Config, provider_said
from publisher.errors import ConfigError
from publisher.services.doctor import CREDENTIAL_CHECKS, NETWORK_SECONDS
from publisher.services.settings_text import SECRET_KEYS

__all__ = ["check"]


def check(config: Config) -> str | None:
    """None when the provider took the credentials (or there are none: maildir); a sentence
    when they went unchecked; ConfigError when the provider refused them."""
    provider = str(config["delivery.provider"])
    checker = CREDENTIAL_CHECKS.get(provider)
    if provider == "maildir" or checker is None:
        return None
    secret = next((name for name, _label, p in SECRET_KEYS if p == provider), "")
    try:
        with httpx.Client(timeout=NETWORK_SECONDS, follow_redirects=False) as client:
            finding = checker(config, client)
    except httpx.HTTPError as exc:
        return f"{provider_said(provider)} could not be reached to check the key ({exc}); it was saved unchecked."
    if finding.status == "ok":
        return None
    if finding.status == "warn":
        return f"{finding.detail}; the key was saved unchecked."
    raise ConfigError(
        f"config.toml: [secrets] {secret} was refused: {finding.detail}. Nothing was saved and the old "
        "settings keep working; copy the key again from the provider's dashboard."
    )
