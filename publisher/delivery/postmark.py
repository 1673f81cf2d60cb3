"""Postmark: the batch endpoint, up to 500 messages a call, one result per message.

Postmark answers 200 for a batch even when single messages are refused: each entry of
the answer carries its own ErrorCode (0 for accepted), in the order of the request.
https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Unpack

import httpx

from publisher.delivery.base import (
    R,
    Template,
    failed,
    mailbox,
    retry,
    sent,
    split_address,
)
from publisher.delivery.http_api import Connection, HttpApiProvider, json_or_none
from publisher.models import SendResult

if TYPE_CHECKING:
    from publisher.config import Config

__all__ = ["PostmarkProvider"]

# Postmark stopped sending to the address (hard bounce, complaint, manual suppression).
INACTIVE_RECIPIENT = 406
# ErrorCodes worth another try later: rate limit, maintenance.
_TEMPORARY_CODES = frozenset({429, 100})
# ErrorCodes that refuse the account rather than a message: bad token, not allowed to
# send (no credits), account pending, account may not send.
_ACCOUNT_CODES = frozenset({10, 405, 412, 413})


class PostmarkProvider(HttpApiProvider):
    name = "postmark"
    label = "Postmark"
    max_batch = 500
    secret_env = "PUBLISHER_POSTMARK_TOKEN"  # noqa: S105 - names the variable, holds no secret
    default_base_url = "https://api.postmarkapp.com"

    def __init__(self, *, message_stream: str = "broadcast", **connection: Unpack[Connection]) -> None:
        super().__init__(**connection)
        self.message_stream = message_stream

    @classmethod
    def _config_options(cls, config: Config) -> dict[str, Any]:
        stream = str(config["delivery.postmark.message_stream"])
        return {**super()._config_options(config), "message_stream": stream}

    def _item(self, template: Template[R], recipient: R, now: datetime) -> dict[str, Any]:
        html, text = template.parts(recipient)
        message: dict[str, Any] = {
            "From": mailbox(*split_address(template.sender, template.sender_address)),
            "To": mailbox(recipient.name, recipient.email),
            "Subject": template.subject,
            "HtmlBody": html,
            "TextBody": text,
            "MessageStream": self.message_stream,
            "Headers": [
                {"Name": name, "Value": value}
                for name, value in template.headers(recipient).items()
            ],
            # Privacy by default: no open pixel, no rewritten links.
            "TrackOpens": False,
            "TrackLinks": "None",
        }
        if template.reply_to:
            message["ReplyTo"] = template.reply_to
        if recipient.delivery_id is not None:
            message["Metadata"] = {"delivery_id": str(recipient.delivery_id)}
        return message

    def _request(self, template: Template[R], chunk: list[R], items: list[Any]) -> httpx.Request:
        return self._client.build_request(
            "POST",
            f"{self.base_url}/email/batch",
            json=items,
            headers={"Accept": "application/json", "X-Postmark-Server-Token": self._api_key},
        )

    def _accepted(self, response: httpx.Response, chunk: list[R]) -> list[SendResult]:
        answers = json_or_none(response)
        if not isinstance(answers, list) or len(answers) != len(chunk):
            # A 200 means the batch was taken; count it sent rather than send it twice.
            return [
                sent(r, detail="Postmark accepted the batch; its answer could not be read")
                for r in chunk
            ]
        results = []
        for recipient, answer in zip(chunk, answers, strict=True):
            entry = answer if isinstance(answer, dict) else {}
            code = entry.get("ErrorCode")
            message = str(entry.get("Message", ""))
            if code == 0:
                results.append(sent(recipient, provider_id=str(entry.get("MessageID", ""))))
            elif code in _TEMPORARY_CODES:
                results.append(retry(recipient, f"Postmark error {code}: {message}"))
            elif code == INACTIVE_RECIPIENT:
                detail = f"Postmark error {code} (inactive recipient): {message}"
                results.append(failed(recipient, detail))
            else:
                results.append(failed(recipient, f"Postmark error {code}: {message}"))
        return results

    def _account_refused(self, response: httpx.Response) -> bool:
        body = json_or_none(response)
        return isinstance(body, dict) and body.get("ErrorCode") in _ACCOUNT_CODES

    def _temporary(self, response: httpx.Response) -> bool:
        body = json_or_none(response)
        return isinstance(body, dict) and body.get("ErrorCode") in _TEMPORARY_CODES
