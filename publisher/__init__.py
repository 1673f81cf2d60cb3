"""publisher: one source of articles becomes feeds and email newsletters, sent exactly once."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Looked up on first use: importlib.metadata costs every command a noticeable start-up.
    if name != "__version__":
        raise AttributeError(f"module 'publisher' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("publisher")
    except PackageNotFoundError:  # pragma: no cover  (running from a source tree)
        return "0.0.0"
