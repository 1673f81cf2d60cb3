"""The database: SQLAlchemy Core over SQLite (default) or PostgreSQL. SQL lives only here.

`open_store(url)` gives an engine with the schema migrated; the modules beside this one
(`subscribers`, `ledger`, ...) take that engine and return dataclasses, never rows.
The names below are loaded on first use, so that `glance` (status on the command
line) imports none of SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from publisher.store.engine import begin_write, open_store, shared_reads

__all__ = ["begin_write", "open_store", "shared_reads"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("publisher.store.engine"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
