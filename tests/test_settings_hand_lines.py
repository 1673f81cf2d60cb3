"""Lines written by hand in config.toml's [schedule] and [backup] stay as written when the
Settings page saves the same choice they mean: "Nothing was changed", the file untouched."""

from __future__ import annotations

import pytest
from test_settings_digest import hand_written, save, url
from test_settings_edit import config, text_of

from publisher.config import Config

__all__ = ["config", "url"]


@pytest.mark.parametrize(
    ("table", "group"),
    [
        ('\n[schedule]\ndigest = "00 08 * * MON"\n', "sending"),
        ('\n[schedule]\ndigest = "0 8 * * 1"\n', "sending"),
        ('\n[schedule]\nwindow = "Thu,Mon 7:30"\n', "sending"),
        ('\n[backup]\nschedule = "30 03 * * *"\n', "safety"),
    ],
    ids=["digest-padded-and-upper-case", "digest-weekday-as-number", "window-unsorted", "backup-padded"],
)
def test_saving_the_same_choice_keeps_the_hand_written_line(
    config: Config, url: str, table: str, group: str
) -> None:
    hand_written(config, table)
    before = text_of(config)
    status, page = save(url, group)
    assert status == 200, page
    assert "Nothing was changed." in page
    assert text_of(config) == before
