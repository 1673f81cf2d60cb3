"""Mailgun: the messages API in batch mode, up to 1,000 recipients a call.

One multipart/form-data request carries the bodies once and a `to` field per recipient;
`recipient-variables` (JSON keyed by address) holds each recipient's values, which Mailgun
substitutes for `%recipient.KEY%` in the bodies and in `h:` header fields alike, so the
per-recipient List-Unsubscribe and Message-ID headers need no call of their own. With
recipient variables present Mailgun sends every recipient a separate message.
https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Unpack
from urllib.parse import quote

import httpx

from publisher.delivery.base import (
    R,
    Template,
    mailbox,
    sent,
    split_address,
)
from publisher.delivery.http_api import Connection, HttpApiProvider, json_or_none
from publisher.errors import ConfigError
from publisher.models import SendResult

if TYPE_CHECKING:
    from publisher.config import Config

__all__ = ["MailgunProvider"]


class MailgunProvider(HttpApiProvider):
    name = "mailgun"
    label = "Mailgun"
    max_batch = 1000
    unique_addresses = True
    secret_env = "PUBLISHER_MAILGUN_API_KEY"  # noqa: S105 - names the variable, holds no secret
    default_base_url = "https://api.mailgun.net"

    def __init__(self, *, domain: str, **connection: Unpack[Connection]) -> None:
        if not domain or "/" in domain:
            raise ConfigError(
                "[delivery.mailgun] domain must name your Mailgun sending domain, "
                f"e.g. \"mg.example.org\"; got {domain!r}."
            )
        super().__init__(**connection)
        token = base64.b64encode(f"api:{self._api_key}".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self.domain = domain

    @classmethod
    def _config_options(cls, config: Config) -> dict[str, Any]:
        return {**super()._config_options(config), "domain": str(config["delivery.mailgun.domain"])}

    def _item(
        self, template: Template[R], recipient: R, now: datetime
    ) -> tuple[Mapping[str, str], Mapping[str, str]]:
        return template.substitutions(recipient), template.headers(recipient)

    def _request(self, template: Template[R], chunk: list[R], items: list[Any]) -> httpx.Request:
        variables: dict[str, dict[str, str]] = {r.email: {} for r in chunk}
        fields: list[tuple[str, str]] = [
            ("from", mailbox(*split_address(template.sender, template.sender_address))),
            ("subject", template.subject),
        ]
        fields += [("to", mailbox(r.name, r.email)) for r in chunk]

        html, text = template.html, template.text
        values = [subs for subs, _ in items]
        tokens = sorted({token for subs in values for token in subs}, key=len, reverse=True)
        for index, token in enumerate(tokens):
            key = f"s{index}"
            html = html.replace(token, f"%recipient.{key}%")
            text = text.replace(token, f"%recipient.{key}%")
            for recipient, subs in zip(chunk, values, strict=True):
                variables[recipient.email][key] = subs.get(token, "")
        fields += [("text", text), ("html", html)]

        headers = [each for _, each in items]
        names = list(dict.fromkeys(name for each in headers for name in each))
        for index, name in enumerate(names):
            per_recipient = [each.get(name, "") for each in headers]
            if len(set(per_recipient)) == 1:
                fields.append((f"h:{name}", per_recipient[0]))
                continue
            key = f"h{index}"
            fields.append((f"h:{name}", f"%recipient.{key}%"))
            for recipient, value in zip(chunk, per_recipient, strict=True):
                variables[recipient.email][key] = value
        if template.reply_to:
            fields.append(("h:Reply-To", template.reply_to))

        if any(r.delivery_id is not None for r in chunk):
            fields.append(("v:delivery_id", "%recipient.delivery_id%"))
            for recipient in chunk:
                variables[recipient.email]["delivery_id"] = str(recipient.delivery_id or "")
        fields += [
            ("recipient-variables", json.dumps(variables, ensure_ascii=False)),
            # Privacy by default: no open pixel, no rewritten links.
            ("o:tracking", "no"),
            ("o:tracking-clicks", "no"),
            ("o:tracking-opens", "no"),
        ]
        return self._client.build_request(
            "POST",
            f"{self.base_url}/v3/{quote(self.domain, safe='')}/messages",
            # (None, value) pairs make httpx send multipart/form-data, as Mailgun asks.
            files=[(name, (None, value)) for name, value in fields],
            headers={"Authorization": self._authorization},
        )

    def _accepted(self, response: httpx.Response, chunk: list[R]) -> list[SendResult]:
        body = json_or_none(response)
        message_id = str(body.get("id", "")) if isinstance(body, dict) else ""
        return [sent(recipient, provider_id=message_id) for recipient in chunk]
