"""Loopback stand-ins for the outside world, for any test to use.

- `FakeAPI` (fakes.http_api): a threaded HTTP server that records requests and answers
  from a script: success, 4xx, 429 with Retry-After, 5xx, or a hang past the timeout.
- `vendors` (fakes.vendors): handlers that check a request the way Postmark, SendGrid,
  Mailgun, SES or Resend document it and answer like them.
- `SMTPServer` (fakes.smtp): aiosmtpd counting connections and copies per recipient,
  with scripted 4xx/5xx answers per recipient.

tests/conftest.py turns them into the `fake_api` and `smtp_server` fixtures.
"""

from fakes import vendors
from fakes.http_api import FakeAPI, RecordedRequest, Reply
from fakes.smtp import Received, SMTPServer

__all__ = ["FakeAPI", "Received", "RecordedRequest", "Reply", "SMTPServer", "vendors"]
