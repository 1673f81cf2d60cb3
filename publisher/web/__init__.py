"""The HTTP app of `publisher serve`: feeds and archive, subscription pages, webhooks.

`create_app(config)` builds it; see `publisher.web.app` for the routes.
"""

from __future__ import annotations

from publisher.web.app import create_app

__all__ = ["create_app"]
