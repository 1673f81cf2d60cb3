"""Amazon SES: the v2 SendEmail API with the finished message as raw MIME, one per call.

Raw content keeps every header this project writes (List-Unsubscribe, DKIM, Message-ID)
exactly as built. Requests are signed with Signature Version 4 by botocore, the signer
AWS's own SDK uses; nothing here reimplements it.
https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from publisher.delivery.base import R, Template, require_secret, sent
from publisher.delivery.http_api import HttpApiProvider, json_or_none
from publisher.errors import ConfigError
from publisher.models import SendResult

if TYPE_CHECKING:
    from publisher.config import Config

__all__ = ["SesProvider"]

PATH = "/v2/email/outbound-emails"
# Errors SES documents for SendEmail that a later attempt can get past.
_TEMPORARY = frozenset({"TooManyRequestsException", "ThrottlingException", "SendingPausedException"})
# Errors about the account or its settings, not about one message.
_ACCOUNT = frozenset(
    {
        "AccountSuspendedException",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "AccessDeniedException",
    }
)


class SesProvider(HttpApiProvider):
    name = "ses"
    label = "Amazon SES"
    max_batch = 10
    call_size = 1
    secret_env = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"  # noqa: S105 - names the variable, holds no secret

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        region: str,
        session_token: str | None = None,
        endpoint: str = "",
        configuration_set: str = "",
        client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        from botocore.credentials import Credentials

        # Requests are signed with a key pair rather than carrying one API key.
        self._connect(endpoint or f"https://email.{region}.amazonaws.com", client, timeout)
        self.region = region
        self.configuration_set = configuration_set
        self._credentials = Credentials(access_key, secret_key, session_token)

    @classmethod
    def _config_options(cls, config: Config) -> dict[str, Any]:
        access_key = require_secret(config, "AWS_ACCESS_KEY_ID", cls.name)
        secret_key = require_secret(config, "AWS_SECRET_ACCESS_KEY", cls.name)
        region = str(config["delivery.ses.region"]) or config.secret("AWS_REGION") or ""
        if not region:
            raise ConfigError(
                "[delivery] provider 'ses' needs a region: set [delivery.ses] region in "
                "config.toml or AWS_REGION in the environment, e.g. \"eu-west-1\"."
            )
        return {
            "access_key": access_key,
            "secret_key": secret_key,
            "region": region,
            "session_token": config.secret("AWS_SESSION_TOKEN"),
            "endpoint": str(config["delivery.ses.endpoint"]),
            "configuration_set": str(config["delivery.ses.configuration_set"]),
        }

    def _item(self, template: Template[R], recipient: R, now: datetime) -> bytes:
        return template.message_bytes(recipient, now)

    def _request(self, template: Template[R], chunk: list[R], items: list[Any]) -> httpx.Request:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        (recipient,) = chunk
        (raw,) = items
        payload: dict[str, Any] = {
            "FromEmailAddress": template.sender_address,
            "Destination": {"ToAddresses": [recipient.email]},
            "Content": {"Raw": {"Data": base64.b64encode(raw).decode("ascii")}},
        }
        if self.configuration_set:
            payload["ConfigurationSetName"] = self.configuration_set
        return_path = str(getattr(recipient, "return_path", "") or "")
        if return_path:
            # SES keeps its own MAIL FROM; its bounce and complaint mails go to this address.
            payload["FeedbackForwardingEmailAddress"] = return_path
        if recipient.delivery_id is not None:
            payload["EmailTags"] = [{"Name": "delivery_id", "Value": str(recipient.delivery_id)}]
        body = json.dumps(payload).encode("utf-8")
        url = f"{self.base_url}{PATH}"
        signed = AWSRequest(
            method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(self._credentials, "ses", self.region).add_auth(signed)
        return self._client.build_request(
            "POST", url, content=body, headers=dict(signed.headers.items())
        )

    def _accepted(self, response: httpx.Response, chunk: list[R]) -> list[SendResult]:
        body = json_or_none(response)
        message_id = str(body.get("MessageId", "")) if isinstance(body, dict) else ""
        return [sent(recipient, provider_id=message_id) for recipient in chunk]

    def _temporary(self, response: httpx.Response) -> bool:
        return _error_type(response) in _TEMPORARY

    def _account_refused(self, response: httpx.Response) -> bool:
        return _error_type(response) in _ACCOUNT

    def _settings(self) -> str:
        return "AWS_REGION and the [delivery.ses] settings"


def _error_type(response: httpx.Response) -> str:
    """The error's short name, from x-amzn-ErrorType or the body's __type."""
    kind = str(response.headers.get("x-amzn-ErrorType", ""))
    if not kind:
        body = json_or_none(response)
        kind = str(body.get("__type", "")) if isinstance(body, dict) else ""
    return kind.split(":", 1)[0].rsplit("#", 1)[-1]
