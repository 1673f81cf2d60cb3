"""Hypothesis profiles for the fuzz suites.

"ci" (the default): derandomised, so every run tries the same inputs and a failure
repeats; no example database written into the repository; a generous per-example
deadline, since a loaded CI machine is slow, yet a hang still fails. "deep"
(HYPOTHESIS_PROFILE=deep): fresh random inputs and FUZZ_SCALE times as many.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=timedelta(seconds=20), print_blob=True)
settings.register_profile("deep", derandomize=False, database=None, deadline=timedelta(seconds=20), print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

FUZZ_SCALE = 20 if PROFILE == "deep" else 1
"""How many times the bounded example counts are run."""
