"""The database: SQLAlchemy Core over SQLite (default) or PostgreSQL. SQL lives only here.

`open_store(url)` gives an engine with the schema migrated; the modules beside this one
(`subscribers`, `ledger`, ...) take that engine and return dataclasses, never rows.
"""

from __future__ import annotations

from publisher.store.engine import begin_write, open_store

__all__ = ["begin_write", "open_store"]
