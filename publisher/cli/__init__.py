"""The `publisher` command line: one verb per job, one module per group of verbs.

Every command works on ./config.toml, `--config PATH` or $PUBLISHER_CONFIG. Exit codes:
0 done, 1 a problem the message explains, 2 a usage error (click's own).
"""

from __future__ import annotations

from collections.abc import Sequence

# Command modules are imported on demand (see _common.LazyGroup).
from publisher.cli._common import cli

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="publisher")

