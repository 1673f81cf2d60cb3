"""What stands between the setup and real readers, as Home tells an owner."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from desk_support import add_users, quick_hashes, sign_in
from web_support import live_server, make_publication

from publisher.services.readiness import go_live_gaps
from publisher.services.settings_text import CHOICE_WORDS
from publisher.web import create_app


def test_home_names_the_demo_provider_as_settings_offers_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Home's list before going live says the folder provider in Settings' words, never "maildir"."""
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    add_users(config)
    with live_server(create_app(config)) as base, httpx.Client(base_url=base) as http:
        sign_in(http, "owner@example.org")
        page = http.get("/desk/").text
    gaps = page[page.index('id="gaps-h"') :].split("</section>", 1)[0]
    said = re.sub(r"<[^>]+>", "", gaps)
    assert "None yet: write each email into a folder" in said and "maildir" not in said.lower(), said


def test_the_gap_reuses_the_settings_words(tmp_path: Path) -> None:
    """The words come from the one table Settings shows, so the two cannot drift apart."""
    config = make_publication(tmp_path)
    assert any(CHOICE_WORDS["provider"]["maildir"] in gap for gap in go_live_gaps(config))
