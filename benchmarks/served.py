"""What the benchmarks that start `publisher serve` share: waiting until it answers."""

from __future__ import annotations

import time

import httpx


def wait_up(base: str, *, seconds: float = 60.0) -> None:
    """Return once `base`/healthz answers 200; SystemExit after `seconds` without it."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the app did not start")
        time.sleep(0.2)
