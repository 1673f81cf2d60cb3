"""Old addresses of moved-in articles, as the app answers them (`publisher.store.redirects`).

Kept apart from `migration`, which loads the export readers: the app needs only this.
"""

from __future__ import annotations

from sqlalchemy import Engine

from publisher.store import redirects

__all__ = ["normal_path", "old_addresses"]

normal_path = redirects.normal_path


def old_addresses(db: Engine) -> dict[str, str]:
    """Every old path (as `normal_path` writes it) -> the path of its page here."""
    return {r.old_path: r.target for r in redirects.all_redirects(db)}
