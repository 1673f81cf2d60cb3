"""Getting newsletters out: the provider interface, the registry, and the providers.

    base.py       Provider protocol, PROVIDERS registry, make_provider, result helpers
    maildir.py    .eml files in a Maildir (the demo's outbox)
    smtp.py       a pool of persistent SMTP connections
    http_api.py   what the HTTP API providers share (status mapping, batching)
    postmark.py, sendgrid.py, mailgun.py, ses.py, resend.py   one module per vendor

Importing this package loads no provider; `make_provider` imports the one configured.
"""

from __future__ import annotations

from publisher.delivery.base import (
    PROVIDERS,
    Provider,
    ProviderFactory,
    RecipientLike,
    Template,
    make_provider,
)

__all__ = [
    "PROVIDERS",
    "Provider",
    "ProviderFactory",
    "RecipientLike",
    "Template",
    "make_provider",
]
