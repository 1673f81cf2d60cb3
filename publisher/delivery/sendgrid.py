"""SendGrid: v3 mail/send, one personalization per recipient, up to 1,000 a call.

The issue's bodies go once, with their placeholder tokens; each personalization carries
the recipient's `substitutions` (token to value) and headers (List-Unsubscribe differs
per recipient). SendGrid answers 202 with no per-message status.
https://www.twilio.com/docs/sendgrid/for-developers/sending-email/personalizations
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from publisher.delivery.base import (
    R,
    Template,
    clean_text,
    sent,
    split_address,
)
from publisher.delivery.http_api import HttpApiProvider
from publisher.models import SendResult

__all__ = ["SendGridProvider"]


def _contact(name: str, address: str) -> dict[str, str]:
    return {"email": address, "name": name} if name else {"email": address}


class SendGridProvider(HttpApiProvider):
    name = "sendgrid"
    label = "SendGrid"
    max_batch = 1000
    unique_addresses = True
    secret_env = "PUBLISHER_SENDGRID_API_KEY"  # noqa: S105 - names the variable, holds no secret
    default_base_url = "https://api.sendgrid.com"

    def _item(self, template: Template[R], recipient: R, now: datetime) -> dict[str, Any]:
        personalization: dict[str, Any] = {
            "to": [_contact(clean_text(recipient.name), recipient.email)]
        }
        substitutions = dict(template.substitutions(recipient))
        if substitutions:
            personalization["substitutions"] = substitutions
        headers = dict(template.headers(recipient))
        if headers:
            personalization["headers"] = headers
        if recipient.delivery_id is not None:
            personalization["custom_args"] = {"delivery_id": str(recipient.delivery_id)}
        return personalization

    def _request(self, template: Template[R], chunk: list[R], items: list[Any]) -> httpx.Request:
        body: dict[str, Any] = {
            "personalizations": items,
            "from": _contact(*split_address(template.sender, template.sender_address)),
            "subject": template.subject,
            # text/plain must come first, then text/html.
            "content": [
                {"type": "text/plain", "value": template.text},
                {"type": "text/html", "value": template.html},
            ],
            # Privacy by default: no click or open tracking, no added unsubscribe footer.
            "tracking_settings": {
                "click_tracking": {"enable": False, "enable_text": False},
                "open_tracking": {"enable": False},
                "subscription_tracking": {"enable": False},
            },
        }
        if template.reply_to:
            body["reply_to"] = _contact(*split_address(template.reply_to))
        return self._client.build_request(
            "POST",
            f"{self.base_url}/v3/mail/send",
            json=body,
            headers={"Authorization": f"Bearer {self._api_key}"},
        )

    def _accepted(self, response: httpx.Response, chunk: list[R]) -> list[SendResult]:
        message_id = response.headers.get("X-Message-Id", "")
        return [sent(recipient, provider_id=message_id) for recipient in chunk]
