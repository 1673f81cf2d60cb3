"""Handlers for `FakeAPI` that check a request the way each vendor documents it and
answer the way the vendor does.

A failed check is an AssertionError: `FakeAPI` records it in `problems` and answers 400,
so a provider sending the wrong shape both fails its test and says why.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import uuid
from collections.abc import Collection
from datetime import UTC, datetime

from fakes.http_api import Handler, RecordedRequest, Reply

__all__ = ["mailgun", "postmark", "resend", "sendgrid", "ses"]


def _expect(request: RecordedRequest, path: str) -> None:
    assert request.method == "POST", f"method {request.method}, expected POST"
    assert request.path == path, f"path {request.path!r}, expected {path!r}"


def postmark(token: str, *, inactive: Collection[str] = ()) -> Handler:
    """POST /email/batch; addresses in `inactive` get ErrorCode 406 like a suppressed one."""

    def handle(request: RecordedRequest) -> Reply:
        _expect(request, "/email/batch")
        assert request.headers.get("x-postmark-server-token") == token, "server token header"
        assert request.headers.get("accept") == "application/json", "Accept: application/json"
        assert request.headers.get("content-type", "").startswith("application/json")
        messages = request.json()
        assert isinstance(messages, list) and 1 <= len(messages) <= 500, "1..500 messages"
        answers = []
        for message in messages:
            for key in ("From", "To", "Subject", "MessageStream"):
                assert isinstance(message.get(key), str) and message[key], f"{key} missing"
            assert message.get("HtmlBody") or message.get("TextBody"), "a body is required"
            for header in message.get("Headers", []):
                assert set(header) == {"Name", "Value"}, f"header {header!r}"
            address = message["To"].rsplit("<", 1)[-1].rstrip(">")
            if address in inactive:
                answers.append({"ErrorCode": 406, "Message": "You tried to send to recipient(s) "
                                "that have been marked as inactive.", "To": message["To"]})
                continue
            answers.append({"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4()),
                            "SubmittedAt": "2024-01-15T12:01:05-05:00", "To": message["To"]})
        return Reply.ok(answers)

    return handle


def sendgrid(api_key: str) -> Handler:
    """POST /v3/mail/send; 202 with an X-Message-Id header and no body."""

    def handle(request: RecordedRequest) -> Reply:
        _expect(request, "/v3/mail/send")
        assert request.headers.get("authorization") == f"Bearer {api_key}", "Bearer key"
        body = request.json()
        personalizations = body.get("personalizations")
        assert isinstance(personalizations, list) and 1 <= len(personalizations) <= 1000
        seen: set[str] = set()
        for personalization in personalizations:
            to = personalization.get("to")
            assert isinstance(to, list) and to and all("email" in item for item in to)
            for item in to:
                assert item["email"].lower() not in seen, "an address appears twice"
                seen.add(item["email"].lower())
            for key in ("substitutions", "headers", "custom_args"):
                values = personalization.get(key, {})
                assert all(isinstance(v, str) for v in values.values()), f"{key} not strings"
        assert body.get("from", {}).get("email"), "from.email"
        assert body.get("subject"), "subject"
        kinds = [part["type"] for part in body.get("content", [])]
        assert kinds == ["text/plain", "text/html"], f"content order {kinds}"
        return Reply(status=202, headers={"X-Message-Id": uuid.uuid4().hex})

    return handle


def mailgun(domain: str, api_key: str) -> Handler:
    """POST /v3/{domain}/messages as multipart/form-data with basic auth api:KEY."""

    def handle(request: RecordedRequest) -> Reply:
        _expect(request, f"/v3/{domain}/messages")
        expected = base64.b64encode(f"api:{api_key}".encode()).decode()
        assert request.headers.get("authorization") == f"Basic {expected}", "basic auth api:KEY"
        kind = request.headers.get("content-type", "")
        assert kind.startswith("multipart/form-data"), f"content type {kind}"
        form = request.form()
        for key in ("from", "to", "subject", "recipient-variables"):
            assert form.get(key), f"{key} missing"
        assert form.get("text") or form.get("html"), "a body is required"
        assert len(form["to"]) <= 1000, "at most 1,000 recipients"
        variables = json.loads(form["recipient-variables"][0])
        addresses = [to.rsplit("<", 1)[-1].rstrip(">") for to in form["to"]]
        assert sorted(variables) == sorted(addresses), "recipient-variables keyed by address"
        return Reply.ok({"id": f"<{uuid.uuid4().hex}@{domain}>", "message": "Queued. Thank you."})

    return handle


def ses(access_key: str, secret_key: str, region: str) -> Handler:
    """POST /v2/email/outbound-emails, the SigV4 signature recomputed and compared."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    credentials = Credentials(access_key, secret_key)

    def handle(request: RecordedRequest) -> Reply:
        _expect(request, "/v2/email/outbound-emails")
        authorization = request.headers.get("authorization", "")
        amz_date = request.headers.get("x-amz-date", "")
        scope = f"{access_key}/{amz_date[:8]}/{region}/ses/aws4_request"
        assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={scope}"), authorization
        signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        url = f"http://{request.headers['host']}{request.path}"
        check = AWSRequest(method="POST", url=url, data=request.body,
                           headers={name: request.headers[name] for name in signed_names})
        check.context["timestamp"] = amz_date
        signer = SigV4Auth(credentials, "ses", region)
        canonical = signer.canonical_request(check)
        signature = signer.signature(signer.string_to_sign(check, canonical), check)
        assert authorization.endswith(f"Signature={signature}"), "signature does not verify"
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - when).total_seconds()) < 300, "stale X-Amz-Date"

        body = request.json()
        assert body.get("FromEmailAddress"), "FromEmailAddress"
        to = body.get("Destination", {}).get("ToAddresses")
        assert isinstance(to, list) and len(to) == 1, "one destination"
        raw = base64.b64decode(body["Content"]["Raw"]["Data"], validate=True)
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
        assert message["Message-ID"] and message["To"], "raw data is a whole message"
        return Reply.ok({"MessageId": uuid.uuid4().hex})

    return handle


def resend(api_key: str, *, refuse: Collection[str] = ()) -> Handler:
    """POST /emails/batch; in permissive mode addresses in `refuse` come back as errors."""

    def handle(request: RecordedRequest) -> Reply:
        _expect(request, "/emails/batch")
        assert request.headers.get("authorization") == f"Bearer {api_key}", "Bearer key"
        emails = request.json()
        assert isinstance(emails, list) and 1 <= len(emails) <= 100, "1..100 emails"
        data, errors = [], []
        for index, item in enumerate(emails):
            for key in ("from", "subject"):
                assert isinstance(item.get(key), str) and item[key], f"{key} missing"
            assert isinstance(item.get("to"), list) and item["to"], "to must be a list"
            assert item.get("html") or item.get("text"), "a body is required"
            assert all(isinstance(v, str) for v in item.get("headers", {}).values())
            address = item["to"][0].rsplit("<", 1)[-1].rstrip(">")
            if address in refuse:
                errors.append({"index": index, "message": "Invalid `to` field."})
            else:
                data.append({"id": str(uuid.uuid4())})
        if errors and request.headers.get("x-batch-validation") != "permissive":
            return Reply.error(422, {"statusCode": 422, "name": "validation_error",
                                     "message": errors[0]["message"]})
        return Reply.ok({"data": data, "errors": errors} if errors else {"data": data})

    return handle
