"""The `publisher` command line: one verb per job, one module per group of verbs.

Every command works on ./config.toml, `--config PATH` or $PUBLISHER_CONFIG. Exit codes:
0 done, 1 a problem the message explains, 2 a usage error (click's own).
"""

from __future__ import annotations

from collections.abc import Sequence

# Each module adds its commands to `cli` when imported.
from publisher.cli import build as _build  # noqa: F401  (registers commands)
from publisher.cli import importing as _importing  # noqa: F401
from publisher.cli import schedule as _schedule  # noqa: F401
from publisher.cli import send as _send  # noqa: F401
from publisher.cli import serve as _serve  # noqa: F401
from publisher.cli import subscribers as _subscribers  # noqa: F401
from publisher.cli._common import cli

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="publisher")

