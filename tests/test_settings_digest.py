"""Settings' digest and send window as an author says them: choices saved as the lines
config.toml keeps, said in words with the next times, bad choices told beside the field."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from test_settings_edit import COMMENTED, NOW, config, form_of, owner, text_of
from web_support import live_server

from publisher.config import Config, load_config
from publisher.services.settings_text import digest_choice, digest_schedule
from publisher.web import create_app

__all__ = ["config"]  # the publication, from the settings tests


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    """The app over HTTP with its clock on Monday 7 December 2026, 09:00 UTC."""
    with live_server(create_app(config, clock=lambda: NOW)) as base:
        yield base


def save(url: str, group: str, **changes: str) -> tuple[int, str]:
    """The group's form as the page shows it, with `changes`, posted by the owner."""
    with owner(url) as http:
        fields = form_of(http.get("/desk/settings").text, group)
        answer = http.post("/desk/settings/save", data={**fields, **changes})
    return answer.status_code, answer.text


def digest_of(config: Config) -> str:
    return str(load_config(config.root / "config.toml")["schedule.digest"])


def hand_written(config: Config, table: str) -> None:
    path = config.root / "config.toml"
    path.write_text(path.read_text(encoding="utf-8") + table, encoding="utf-8")


def test_the_digest_is_offered_as_choices_not_a_cron_line(config: Config, url: str) -> None:
    """No digest, every day, every week, every month: no box to type a cron line into."""
    with owner(url) as http:
        page = http.get("/desk/settings").text
    form = re.search(r'id="g-sending".*?</form>', page, re.S)
    assert form
    options = re.findall(r"<option value=\"(\w+)\"[^>]*>([^<]+)</option>",
                         re.search(r'name="digest_when".*?</select>', form.group(0), re.S).group(0))  # type: ignore[union-attr]
    assert options == [("off", "No digest"), ("daily", "Every day"), ("weekly", "Every week"),
                       ("monthly", "Every month")]
    assert 'name="digest"' not in form.group(0) and "cron" not in form.group(0).lower()


def test_every_week_on_a_day_is_saved_as_the_cron_line_and_said_with_its_next_times(
    config: Config, url: str
) -> None:
    """Wednesdays at 07:30 becomes "30 7 * * wed"; the answer says when the next three go."""
    status, page = save(url, "sending", digest_when="weekly", digest_day="wed", digest_time="07:30")
    assert status == 200, page
    assert digest_of(config) == "30 7 * * wed"
    assert ("The digest goes out every Wednesday at 07:30 UTC: next on Wednesday 9 December 2026 at 07:30, "
            "Wednesday 16 December 2026 at 07:30 and Wednesday 23 December 2026 at 07:30.") in page
    assert re.search(r'<option value="weekly" selected>', page)


def test_every_day_at_a_time_is_saved_in_the_publications_zone(config: Config, url: str) -> None:
    """Every day at 06:45 in Europe/Berlin: the line, and the next times in that zone."""
    text = text_of(config).replace('language = "en"', 'language = "en"\ntimezone = "Europe/Berlin"')
    (config.root / "config.toml").write_text(text, encoding="utf-8")
    status, page = save(url, "sending", digest_when="daily", digest_time="06:45")
    assert status == 200, page
    assert digest_of(config) == "45 6 * * *"
    assert "every day at 06:45 Europe/Berlin: next on Tuesday 8 December 2026 at 06:45" in page


def test_every_month_on_a_day_is_saved_as_the_cron_line(config: Config, url: str) -> None:
    """The 15th of every month at 08:00."""
    status, page = save(url, "sending", digest_when="monthly", digest_monthday="15", digest_time="08:00")
    assert status == 200, page
    assert digest_of(config) == "0 8 15 * *"
    assert "every month on day 15 at 08:00 UTC: next on Tuesday 15 December 2026 at 08:00" in page


def test_no_digest_empties_the_line(config: Config, url: str) -> None:
    hand_written(config, '\n[schedule]\ndigest = "0 8 * * mon"\n')
    status, page = save(url, "sending", digest_when="off")
    assert status == 200, page
    assert digest_of(config) == "" and "No digest goes out any more." in page


def test_articles_cannot_wait_for_a_digest_that_never_comes(config: Config, url: str) -> None:
    """"Goes into the next digest" with no digest: told beside the digest, nothing saved."""
    status, page = save(url, "sending", policy="digest", digest_when="off")
    assert status == 400
    assert ('id="s-digest-error">Digest is needed when a new article&#39;s newsletter goes into the next digest: '
            "choose when the digest goes out, or another choice above<") in page
    assert text_of(config) == COMMENTED


@pytest.mark.parametrize(
    ("choice", "said"),
    [
        ({"digest_when": "daily", "digest_time": "25:00"},
         "Digest time must be written HH:MM, from 00:00 to 23:59, such as 08:00, not &#39;25:00&#39;"),
        ({"digest_when": "daily", "digest_time": ""}, "Digest time is missing"),
        ({"digest_when": "monthly", "digest_monthday": "31", "digest_time": "08:00"},
         "Digest day of the month must be 1 to 28, days that every month has, not &#39;31&#39;"),
        ({"digest_when": "monthly", "digest_monthday": "", "digest_time": "08:00"},
         "Digest day of the month is missing: choose one from 1 to 28"),
        ({"digest_when": "weekly", "digest_day": "", "digest_time": "08:00"},
         "Digest day of the week is missing: choose one, Monday to Sunday"),
        ({"digest_when": "fortnightly"}, "Digest choose No digest, Every day, Every week or Every month"),
    ],
    ids=["hour-25", "no-time", "day-31", "no-day-of-month", "no-weekday", "unknown-choice"],
)
def test_a_choice_that_is_not_one_is_told_beside_the_digest_and_nothing_is_saved(
    config: Config, url: str, choice: dict[str, str], said: str
) -> None:
    status, page = save(url, "sending", **choice)
    assert status == 400
    beside = re.search(r'<span class="error field-error" id="s-digest-error">([^<]*)</span>', page)
    assert beside and said in beside.group(1), page
    assert 'aria-describedby="s-digest-error"' in page and "Nothing was saved" in page
    assert text_of(config) == COMMENTED


def test_a_hand_written_line_is_shown_in_words_and_kept_until_another_choice(config: Config, url: str) -> None:
    """Mondays and Thursdays is none of the choices: said in words with its next three
    times, kept when the rest of the form is saved, replaced when she picks a choice."""
    hand_written(config, '\n[schedule]\ndigest = "0 8 * * mon,thu"\n')
    with owner(url) as http:
        page = http.get("/desk/settings").text
    assert '<option value="custom" selected>' in page
    words = re.search(r'id="digest-words">([^<]*)</p>', page)
    assert words and words.group(1) == (
        "The digest goes out every Monday and Thursday at 08:00 UTC. Next: Thursday 10 December 2026 at 08:00, "
        "Monday 14 December 2026 at 08:00 and Thursday 17 December 2026 at 08:00."
    )
    status, _ = save(url, "sending", policy="digest")
    assert status == 200 and digest_of(config) == "0 8 * * mon,thu"
    status, _ = save(url, "sending", digest_when="daily", digest_time="08:00")
    assert status == 200 and digest_of(config) == "0 8 * * *"


def test_the_send_window_is_days_ticked_and_a_time(config: Config, url: str) -> None:
    """Monday and Thursday at 07:30 is "mon,thu 07:30"; every day is "daily"."""
    days = [f"window_{day}" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]
    status, page = save(url, "sending", window_mon="on", window_tue="", window_thu="on", window_time="07:30")
    assert status == 200, page
    assert load_config(config.root / "config.toml")["schedule.window"] == "mon,thu 07:30"
    assert re.search(r'id="s-window_thu" name="window_thu" type="checkbox" value="on" checked', page)
    status, _ = save(url, "sending", **dict.fromkeys(days, "on"), window_time="09:00")
    assert status == 200 and load_config(config.root / "config.toml")["schedule.window"] == "daily 09:00"


def test_a_send_window_without_a_day_is_told_beside_it(config: Config, url: str) -> None:
    with owner(url) as http:
        fields = form_of(http.get("/desk/settings").text, "sending")
        fields.pop("window_tue")  # the one day ticked, unticked
        answer = http.post("/desk/settings/save", data=fields)
    assert answer.status_code == 400
    assert 'id="s-window-error">Send window needs at least one day ticked' in answer.text
    assert text_of(config) == COMMENTED


def test_the_accent_colour_is_picked_not_typed(config: Config, url: str) -> None:
    with owner(url) as http:
        page = http.get("/desk/settings").text
    assert re.search(r'<input id="s-accent_color" name="accent_color" type="color" value="#1d5c63"', page)


def test_each_line_a_choice_writes_reads_back_as_that_choice() -> None:
    """The pure part: choice -> line -> choice, for every kind; other lines stay custom."""
    for form in (
        {"digest_when": "daily", "digest_time": "06:05"},
        {"digest_when": "weekly", "digest_day": "sun", "digest_time": "18:00"},
        {"digest_when": "monthly", "digest_monthday": "28", "digest_time": "00:00"},
    ):
        line = digest_schedule(form)["digest"]
        back = digest_choice(line)
        assert (back.when, back.time) == (form["digest_when"], form["digest_time"]), line
    for line in ("0 8 29 * *", "0 8 * 1 *", "*/5 * * * *", "0 8 * * mon-fri"):
        assert digest_choice(line).when == "custom", line
    assert digest_schedule({"digest": "0 8 * * mon,thu"}) == {"digest": "0 8 * * mon,thu"}
