"""`publisher build`, `check` and `new` (filled in by the build module)."""
from __future__ import annotations
