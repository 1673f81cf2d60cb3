"""Does the mail provider take these credentials? Asked without sending anything.

Each provider with a call that needs the key and sends nothing has a check here: Postmark's
`GET /server`, SendGrid's `GET /v3/scopes`, Mailgun's `GET /v3/domains/<domain>`, Resend's
`GET /domains` (a sending-only key, which may read nothing, is taken), and an SMTP login
that is ended before any message. `check` raises ConfigError, naming the secret, when the
provider refuses the credentials (401 or 403, or SMTP's 535); when the provider cannot be
reached, or has no such call (maildir, SES), it returns a sentence saying the credentials
were not checked, and the caller saves all the same.
"""

from __future__ import annotations

import smtplib
import ssl
from base64 import b64encode
from collections.abc import Callable, Mapping
from urllib.parse import quote

import httpx

from publisher.config import Config
from publisher.errors import ConfigError

__all__ = ["CHECKS", "check"]

TIMEOUT = 10.0


def _refused(provider: str, secret: str, detail: str) -> ConfigError:
    return ConfigError(
        f"config.toml: [secrets] {secret} was refused by {provider} ({detail}): nothing was saved and "
        "the old settings keep working. Copy the key again from the provider's dashboard."
    )


def _http(config: Config, provider: str, secret: str, url: str, headers: Mapping[str, str]) -> str | None:
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            answer = client.get(url, headers={"Accept": "application/json", **headers})
    except httpx.HTTPError as exc:
        return f"{provider} could not be reached to check the key ({exc}); it was saved unchecked."
    if answer.status_code in (401, 403):
        if provider == "resend" and "restricted_api_key" in answer.text:
            return None  # a key that may only send: it is taken
        return _refused_raise(provider, secret, f"it answered {answer.status_code}")
    if answer.status_code >= 400:
        return f"{provider} answered {answer.status_code} to the key check; the key was saved unchecked."
    return None


def _refused_raise(provider: str, secret: str, detail: str) -> str:
    raise _refused(provider, secret, detail)


def _key(config: Config, name: str) -> str:
    return config.secret(name) or ""


def _postmark(config: Config) -> str | None:
    name = "PUBLISHER_POSTMARK_TOKEN"
    return _http(config, "postmark", name, f"{str(config['delivery.postmark.base_url']).rstrip('/')}/server",
                 {"X-Postmark-Server-Token": _key(config, name)})


def _sendgrid(config: Config) -> str | None:
    name = "PUBLISHER_SENDGRID_API_KEY"
    return _http(config, "sendgrid", name, f"{str(config['delivery.sendgrid.base_url']).rstrip('/')}/v3/scopes",
                 {"Authorization": f"Bearer {_key(config, name)}"})


def _mailgun(config: Config) -> str | None:
    name = "PUBLISHER_MAILGUN_API_KEY"
    token = b64encode(f"api:{_key(config, name)}".encode()).decode("ascii")
    domain = quote(str(config["delivery.mailgun.domain"]), safe="")
    return _http(config, "mailgun", name, f"{str(config['delivery.mailgun.base_url']).rstrip('/')}/v3/domains/{domain}",
                 {"Authorization": f"Basic {token}"})


def _resend(config: Config) -> str | None:
    name = "PUBLISHER_RESEND_API_KEY"
    return _http(config, "resend", name, f"{str(config['delivery.resend.base_url']).rstrip('/')}/domains",
                 {"Authorization": f"Bearer {_key(config, name)}"})


def _smtp(config: Config) -> str | None:
    host, port = str(config["delivery.smtp.host"]), int(config["delivery.smtp.port"])
    security, username = str(config["delivery.smtp.security"]), str(config["delivery.smtp.username"])
    context = ssl.create_default_context()
    try:
        conn = (smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=context) if security == "tls"
                else smtplib.SMTP(host, port, timeout=TIMEOUT))
        try:
            if security == "starttls":
                conn.starttls(context=context)
            if username:
                conn.login(username, _key(config, "PUBLISHER_SMTP_PASSWORD"))
        finally:
            try:
                conn.quit()
            except smtplib.SMTPException:
                conn.close()
    except smtplib.SMTPAuthenticationError as exc:
        raise _refused("the SMTP server", "PUBLISHER_SMTP_PASSWORD", f"{exc.smtp_code} for {username!r}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        return f"the SMTP server {host}:{port} could not be reached to check the login ({exc}); saved unchecked."
    return None


CHECKS: Mapping[str, Callable[[Config], str | None]] = {
    "postmark": _postmark,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "resend": _resend,
    "smtp": _smtp,
}


def check(config: Config) -> str | None:
    """None when the provider took the credentials; a sentence when they went unchecked;
    ConfigError when the provider refused them."""
    provider = str(config["delivery.provider"])
    checker = CHECKS.get(provider)
    if checker is None:
        if provider == "maildir":
            return None
        return f"{provider} has no check that sends nothing: send yourself a test copy."
    return checker(config)
