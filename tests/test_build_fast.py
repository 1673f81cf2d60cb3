"""A rebuild after one edit does the work of that edit: what `build` and `check` load, read
and validate when little changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_build import cli_publication

NOT_FOR_A_BUILD = ("feedparser", "premailer", "publisher.mail.newsletter", "publisher.mail.mime")
"""Modules `publisher build` does without when it renders no newsletter preview."""


def _modules_after(config: Path, *args: str) -> list[str]:
    probe = (
        "import sys\nfrom publisher.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print(sorted(m for m in {NOT_FOR_A_BUILD!r} if m in sys.modules))\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PUBLISHER_SECRET": "s" * 32}
    done = subprocess.run(
        [sys.executable, "-c", probe, "--config", str(config), *args],
        cwd=config.parent, capture_output=True, text=True, check=True, env=env,
    )
    return [line for line in done.stdout.splitlines() if line.startswith("[")]


def test_build_without_previews_imports_neither_mail_nor_feedparser(tmp_path: Path) -> None:
    """A build with no newsletter preview to render leaves the mail code and feedparser
    unloaded (a third and a fifth of a second of every rebuild)."""
    config = cli_publication(tmp_path)  # previews = 0
    assert _modules_after(config, "build") == ["[]"]
