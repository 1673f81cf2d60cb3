"""Lines written by hand in config.toml's [schedule] and [backup] stay as written when the
Settings page saves the same choice they mean: "Nothing was changed", the file untouched."""

from __future__ import annotations

import html
import re

import pytest
from test_settings_digest import hand_written, save, url
from test_settings_edit import config, owner, text_of

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


def digest_words(url: str) -> str:
    with owner(url) as http:
        page = http.get("/desk/settings").text
    words = re.search(r'id="digest-words">([^<]*)</p>', page)
    assert words, page
    return html.unescape(words.group(1))


def test_a_line_with_a_day_and_a_weekday_is_said_as_both_must_match(config: Config, url: str) -> None:
    """The daemon sends when the day of the month and the weekday both match (the first
    Monday, for "1-7" and "mon"): the words say so, as the next times show, not "or"."""
    hand_written(config, '\n[schedule]\ndigest = "0 8 1-7 * mon"\n')
    assert digest_words(url) == (
        "The digest goes out at 08:00, between day 1 and 7 of the month, and only on Monday (UTC). "
        "Next: Monday 4 January 2027 at 08:00, Monday 1 February 2027 at 08:00 and Monday 1 March 2027 at 08:00."
    )


def test_a_weekday_with_a_hash_is_refused_not_said_as_the_first_of_the_month(config: Config, url: str) -> None:
    """"mon#1" runs every Monday under the daemon: the page says the line is wrong and what
    to write for the first Monday, instead of "the first Monday" beside every Monday's dates."""
    hand_written(config, '\n[schedule]\ndigest = "0 8 * * mon#1"\n')
    words = digest_words(url)
    assert "on the first Monday of the month" not in words
    assert "'0 8 * * mon#1'" in words and 'for the first Monday of the month write "0 8 1-7 * mon"' in words
    status, page = save(url, "sending")
    assert status == 400 and text_of(config).endswith('digest = "0 8 * * mon#1"\n'), page
