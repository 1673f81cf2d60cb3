"""Resend: the batch endpoint, up to 100 emails a call.

Permissive batch validation makes a message Resend refuses fail alone instead of failing
its 99 neighbours; the answer's `errors` name them by index. An Idempotency-Key derived
from the batch's Message-IDs makes a retried call (after a timeout, say) a no-op on
Resend's side for 24 hours rather than a second copy.
https://resend.com/docs/api-reference/emails/send-batch-emails
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import httpx

from publisher.delivery.base import (
    R,
    Template,
    failed,
    mailbox,
    sent,
    split_address,
)
from publisher.delivery.http_api import HttpApiProvider, json_or_none
from publisher.models import SendResult

__all__ = ["ResendProvider"]


class ResendProvider(HttpApiProvider):
    name = "resend"
    label = "Resend"
    max_batch = 100
    secret_env = "PUBLISHER_RESEND_API_KEY"  # noqa: S105 - names the variable, holds no secret
    default_base_url = "https://api.resend.com"

    def _item(self, template: Template[R], recipient: R, now: datetime) -> dict[str, Any]:
        html, text = template.parts(recipient)
        item: dict[str, Any] = {
            "from": mailbox(*split_address(template.sender, template.sender_address)),
            "to": [mailbox(recipient.name, recipient.email)],
            "subject": template.subject,
            "html": html,
            "text": text,
            "headers": dict(template.headers(recipient)),
        }
        if template.reply_to:
            item["reply_to"] = template.reply_to
        if recipient.delivery_id is not None:
            item["tags"] = [{"name": "delivery_id", "value": str(recipient.delivery_id)}]
        return item

    def _request(self, template: Template[R], chunk: list[R], items: list[Any]) -> httpx.Request:
        headers = {"Authorization": f"Bearer {self._api_key}", "x-batch-validation": "permissive"}
        if all(r.message_id for r in chunk):
            digest = hashlib.sha256("\n".join(r.message_id for r in chunk).encode()).hexdigest()
            headers["Idempotency-Key"] = f"publisher-{digest[:48]}"
        return self._client.build_request(
            "POST", f"{self.base_url}/emails/batch", json=items, headers=headers
        )

    def _accepted(self, response: httpx.Response, chunk: list[R]) -> list[SendResult]:
        body = json_or_none(response)
        data = body.get("data") if isinstance(body, dict) else None
        errors = body.get("errors") if isinstance(body, dict) else None
        refused: dict[int, str] = {}
        for error in errors if isinstance(errors, list) else ():
            if isinstance(error, dict) and isinstance(error.get("index"), int):
                refused[error["index"]] = str(error.get("message", "refused"))
        ids = [str(item.get("id", "")) if isinstance(item, dict) else "" for item in data or ()]
        # Ids come in order for the emails Resend took, which are all but the refused.
        taken = [i for i in range(len(chunk)) if i not in refused]
        by_index = dict(zip(taken, ids, strict=False)) if len(ids) == len(taken) else {}
        return [
            failed(recipient, f"Resend refused this email: {refused[i]}")
            if i in refused
            else sent(recipient, provider_id=by_index.get(i, ""))
            for i, recipient in enumerate(chunk)
        ]
