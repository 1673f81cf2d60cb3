"""The log format of the long-running commands (`serve`, `worker`), set up in one call.

Its own module so that `publisher worker` sets up logging without importing the web app.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["LOG_FORMAT", "QUIET", "access_log", "configure_logging"]

access_log = logging.getLogger("publisher.access")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
QUIET = ("alembic", "apscheduler", "httpx", "uvicorn.error")
"""Libraries that narrate their own start-up at INFO: only their warnings and errors are shown."""


def configure_logging(level: int = logging.INFO) -> None:
    """One format for the daemon's own lines; requests in the common log format, one a line."""
    logging.basicConfig(level=level, format=LOG_FORMAT, force=True)
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Access lines go out bare, so that log tools that read the common log format can.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.handlers[:] = [handler]
    access_log.propagate = False
    access_log.setLevel(logging.INFO)
