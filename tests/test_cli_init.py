"""`publisher init`: a new publication of the author's own, with nothing of the sample's."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from publisher.cli import cli
from publisher.cli import init as init_module
from publisher.services import starter

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = [
    "--title", "Quiet Hours", "--url", "https://quiet.example.net", "--author", "Sam Ito",
    "--from", "Sam Ito <sam@quiet.example.net>", "--postal-address", "4 Elm Row, Leeds LS1 1AA, UK",
    "--timezone", "Europe/London",
]


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, env={"PUBLISHER_CONFIG": ""})


RESOLVES: dict[str, str | None] = {}
"""Hosts whose look-up the tests make fail, and why (every other host resolves)."""


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample hosts are not in DNS: their look-up is answered here (one test asks for real)."""
    monkeypatch.setattr(init_module, "host_resolves", lambda url: RESOLVES.get(url))


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(init_module, "_interactive", lambda: True)


def sample_values() -> list[str]:
    """The sample publication's identity: every text of its [publication] and [newsletter]."""
    data = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    tables = (data["publication"], data["newsletter"])
    return [v for table in tables for v in table.values() if isinstance(v, str) and len(v) > 4]


def test_init_writes_config_and_one_welcome_draft(tmp_path: Path) -> None:
    """The options end up in config.toml; content/ holds one draft; no templates are copied."""
    folder = tmp_path / "quiet"
    result = run("init", str(folder), *OPTIONS)
    assert result.exit_code == 0, result.output
    config = tomllib.loads((folder / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["title"] == "Quiet Hours"
    assert config["publication"]["url"] == "https://quiet.example.net/"
    assert config["publication"]["postal_address"] == "4 Elm Row, Leeds LS1 1AA, UK"
    assert config["publication"]["timezone"] == "Europe/London"
    assert config["newsletter"]["from"] == "Sam Ito <sam@quiet.example.net>"
    (draft,) = (folder / "content").iterdir()
    assert draft.name.endswith("-welcome.md") and "draft: true" in draft.read_text()
    assert not (folder / "templates").exists()
    check = CliRunner().invoke(cli, ["--config", str(folder / "config.toml"), "check"])
    assert check.exit_code == 0, check.output
    assert "1 draft" in check.output


def test_the_new_folder_keeps_its_secrets_out_of_git(tmp_path: Path) -> None:
    """Keys typed in the desk, the DKIM keys it makes and the link secret are in .gitignore,
    so a publication folder put under version control never commits one."""
    folder = tmp_path / "quiet"
    assert run("init", str(folder), *OPTIONS).exit_code == 0
    ignored = (folder / ".gitignore").read_text(encoding="utf-8").splitlines()
    for name in ("/.publisher-secrets", "/dkim-*.pem", ".publisher-secret", "/.publisher-settings.lock", "/backups/",
                 "/publisher-export-*.zip"):
        assert name in ignored, name


def test_a_sender_name_with_a_comma_keeps_its_address(tmp_path: Path) -> None:
    """`Dana Reyes, LCSW <dana@example.org>` is one mailbox: its address is the publication's
    email, not a fragment of the name."""
    folder = tmp_path / "quiet"
    dana = "Dana Reyes, LCSW <dana@quiet.example.net>"
    options = [dana if o == "Sam Ito <sam@quiet.example.net>" else o for o in OPTIONS]
    result = run("init", str(folder), *options)
    assert result.exit_code == 0, result.output
    config = tomllib.loads((folder / "config.toml").read_text(encoding="utf-8"))
    assert config["newsletter"]["from"] == "Dana Reyes, LCSW <dana@quiet.example.net>"
    assert config["publication"]["email"] == "dana@quiet.example.net"


def test_nothing_of_the_sample_leaks(tmp_path: Path) -> None:
    """No value of the sample publication (reply-to, postal address, description...) is copied."""
    run("init", str(tmp_path), *OPTIONS)
    written = "".join(p.read_text(encoding="utf-8") for p in tmp_path.rglob("*") if p.is_file())
    leaked = [value for value in sample_values() if value in written and value not in OPTIONS]
    assert leaked == []
    assert "harbor" not in written.lower() and "dana" not in written.lower()


def test_missing_values_without_a_terminal_are_a_usage_error(tmp_path: Path) -> None:
    """Off a terminal nothing is asked: the missing options are named."""
    result = run("init", str(tmp_path), "--title", "T")
    assert result.exit_code == 2
    assert "--url, --from" in result.output
    assert not (tmp_path / "config.toml").exists()


def test_on_a_terminal_each_missing_value_is_asked(tmp_path: Path, terminal: None) -> None:
    """Run on a terminal, init asks for what the options did not give."""
    answers = "Night Notes\nhttps://night.example.org/\nAl Ray\nAl <al@night.example.org>\n1 Road, Town\nAsia/Tokyo\n"
    result = run("init", str(tmp_path), input=answers)
    assert result.exit_code == 0, result.output
    config = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["title"] == "Night Notes"
    assert config["publication"]["timezone"] == "Asia/Tokyo"
    assert config["newsletter"]["from"] == "Al <al@night.example.org>"


def test_a_bad_answer_is_asked_again_at_once(tmp_path: Path, terminal: None) -> None:
    """A From without an address is told right after it is typed, and the same question comes back."""
    answers = "Night Notes\nnight.example.org\nAl\nAl Ray\nal@night.example.org\n\nTokyo\n"
    result = run("init", str(tmp_path), input=answers)
    assert result.exit_code == 0, result.output
    asked = result.output.split("Newsletters come From")
    assert len(asked) == 3
    assert "has no email address" in asked[1] and "Postal address" not in asked[1]
    config = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert config["newsletter"]["from"] == "al@night.example.org"


def test_answers_to_prompts_never_name_an_option(tmp_path: Path, terminal: None) -> None:
    """Every wrong answer typed at a prompt is explained without naming a command-line option."""
    answers = "\nN\nnot a host\nn.example.org\n\nnobody\nn@n.example.org\n\nAtlantis\nUTC\n"
    result = run("init", str(tmp_path), input=answers)
    assert result.exit_code == 0, result.output
    assert "--" not in result.output
    for told in ("a title is needed", "is not a web address", "has no email address", "no time zone called 'Atlantis'"):
        assert told.lower() in result.output.lower()


@pytest.mark.parametrize(
    ("typed", "zone"),
    [("London", "Europe/London"), ("new york", "America/New_York"), ("europe/paris", "Europe/Paris"),
     ("Kiev", "Europe/Kyiv"), ("UTC", "UTC"), ("  sao_paulo ", "America/Sao_Paulo")],
)
def test_a_city_is_completed_to_its_time_zone(typed: str, zone: str) -> None:
    """A city, in any case and with spaces, or an old name, becomes the IANA zone."""
    assert starter.zone_for(typed) == zone


def test_a_completed_answer_is_shown_as_it_is_kept(tmp_path: Path, terminal: None) -> None:
    """The author sees what "new york" and a bare host became."""
    result = run("init", str(tmp_path), input="T\nt.example.org\n\nt@t.example.org\n\nnew york\n")
    assert result.exit_code == 0, result.output
    assert "Taken as https://t.example.org/" in result.output and "Taken as America/New_York" in result.output


def test_a_name_several_zones_fit_offers_them(tmp_path: Path, terminal: None) -> None:
    """"San" starts the names of several zones: they are listed, and the author types one."""
    answers = "T\nt.example.org\n\nt@t.example.org\n\nSan\nAmerica/Santarem\n"
    result = run("init", str(tmp_path), input=answers)
    assert result.exit_code == 0, result.output
    assert "Several time zones fit 'San'" in result.output
    assert "America/Santiago" in result.output and "America/Santarem" in result.output
    config = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["timezone"] == "America/Santarem"


def test_an_unknown_zone_is_told_with_an_example() -> None:
    """A zone that does not exist names itself and suggests the form of one that does."""
    with pytest.raises(starter.ConfigError, match=r"no time zone called 'Mars/Olympus'; try a city such as"):
        starter.zone_for("Mars/Olympus")


def test_an_address_without_scheme_gets_https(tmp_path: Path) -> None:
    """notes.example.org becomes https://notes.example.org/."""
    options = [*OPTIONS]
    options[options.index("--url") + 1] = "Quiet.example.net/notes"
    result = run("init", str(tmp_path), *options)
    assert result.exit_code == 0, result.output
    config = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["url"] == "https://Quiet.example.net/notes/"


@pytest.mark.parametrize(("typed", "kept"), [
    ("bücher.example.de", "https://bücher.example.de/"), ("127.0.0.1:8000", "https://127.0.0.1:8000/"),
    ("http://localhost:8000", "http://localhost:8000/"),
])
def test_addresses_in_any_script_or_by_number_are_kept(typed: str, kept: str) -> None:
    """A name in another script, an IP address with a port, an explicit http://: taken as typed."""
    assert starter.check_answer("url", typed) == kept


@pytest.mark.parametrize("typed", ["not a host", "https://", "ftp://example.org", "https://a..b/", "x@example.org"])
def test_what_is_no_web_address_is_told(typed: str) -> None:
    """Spaces, no host, another scheme, an empty label, an email address: each refused, saying what to give."""
    with pytest.raises(starter.ConfigError, match="is not a web address: give one such as https://"):
        starter.check_answer("url", typed)


def test_a_host_that_does_not_resolve_is_a_warning_the_author_may_accept(tmp_path: Path, terminal: None) -> None:
    """The DNS may not exist yet: the author is told, asked, and may keep the address."""
    RESOLVES["https://soon.example.org/"] = "soon.example.org does not resolve (Name or service not known)"
    try:
        answers = "T\nsoon.example.org\n\n\nt@t.example.org\n\nUTC\n"
        result = run("init", str(tmp_path), input=answers)
    finally:
        RESOLVES.clear()
    assert result.exit_code == 0, result.output
    assert "soon.example.org does not resolve" in result.output and "Keep this address?" in result.output
    config = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["url"] == "https://soon.example.org/"


def test_declining_an_unresolved_host_asks_again(tmp_path: Path, terminal: None) -> None:
    """Answering no to "Keep this address?" brings the question back."""
    RESOLVES["https://typo.example.org/"] = "typo.example.org does not resolve"
    try:
        answers = "T\ntypo.example.org\nn\nright.example.org\n\nt@t.example.org\n\nUTC\n"
        result = run("init", str(tmp_path), input=answers)
    finally:
        RESOLVES.clear()
    assert result.exit_code == 0, result.output
    config = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["url"] == "https://right.example.org/"


def test_resolving_a_host_has_a_deadline() -> None:
    """The look-up itself: a real host resolves, a reserved .invalid name is told, both in seconds."""
    assert starter.host_resolves("https://localhost/") is None
    problem = starter.host_resolves("https://nowhere.invalid/", timeout=3.0)
    assert problem is not None and "nowhere.invalid" in problem


def test_bad_options_name_the_option(tmp_path: Path) -> None:
    """A bad zone, address or From given as an option is refused naming that option; nothing is written."""
    bad = [*OPTIONS]
    bad[bad.index("--url") + 1] = "ftp://quiet.example.net"
    bad[bad.index("--timezone") + 1] = "Europe/Leeds"
    result = run("init", str(tmp_path), *bad)
    assert result.exit_code == 1
    assert "--url: 'ftp://quiet.example.net' is not a web address" in result.output
    assert "--timezone: no time zone called 'Europe/Leeds'" in result.output
    assert not (tmp_path / "config.toml").exists()
    sender = [*OPTIONS]
    sender[sender.index("--from") + 1] = "Sam Ito"
    assert "--from: 'Sam Ito' has no email address" in run("init", str(tmp_path), *sender).output


def test_an_option_gets_the_same_completion_as_a_prompt(tmp_path: Path) -> None:
    """--timezone London is completed as a typed answer is."""
    options = [*OPTIONS]
    options[options.index("--timezone") + 1] = "london"
    assert run("init", str(tmp_path), *options).exit_code == 0
    config = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["timezone"] == "Europe/London"


def _real_provider(folder: Path) -> None:
    path = folder / "config.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('provider = "maildir"', 'provider = "postmark"'))


def test_a_postal_address_is_required_once_a_real_provider_sends(tmp_path: Path, terminal: None) -> None:
    """With a real provider, an empty postal address is refused, saying why (the law)."""
    run("init", str(tmp_path), *OPTIONS)
    _real_provider(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('postal_address = "4 Elm Row, Leeds LS1 1AA, UK"',
                                                             'postal_address = ""'))
    answers = "\n\n\n\n\n12 Quay St, Hull\n\n"
    result = run("init", str(tmp_path), input=answers)
    assert result.exit_code == 0, result.output
    assert "the law in many countries" in result.output
    assert tomllib.loads(path.read_text())["publication"]["postal_address"] == "12 Quay St, Hull"


def test_a_rerun_offers_the_current_answers_and_changes_only_the_answered_keys(tmp_path: Path, terminal: None) -> None:
    """Run again, init shows today's values as defaults; a new title is written, comments and
    keys it does not ask about stay as they were."""
    assert run("init", str(tmp_path), *OPTIONS).exit_code == 0
    path = tmp_path / "config.toml"
    before = path.read_text(encoding="utf-8").replace('language = "en"', 'language = "fr"  # mine')
    path.write_text(before + "\n# my own note\n", encoding="utf-8")
    drafts = sorted(p.name for p in (tmp_path / "content").iterdir())
    result = run("init", str(tmp_path), input="Loud Hours\n\n\n\n\n\n")
    assert result.exit_code == 0, result.output
    assert "[Quiet Hours]" in result.output and "[Europe/London]" in result.output
    after = path.read_text(encoding="utf-8")
    assert after == before.replace('title = "Quiet Hours"', 'title = "Loud Hours"') + "\n# my own note\n"
    assert "updated" in result.output and "publication.title" in result.output
    assert sorted(p.name for p in (tmp_path / "content").iterdir()) == drafts


def test_a_rerun_with_options_changes_only_those(tmp_path: Path) -> None:
    """Off a terminal, a re-run with one option changes that key alone."""
    run("init", str(tmp_path), *OPTIONS)
    path = tmp_path / "config.toml"
    before = path.read_text(encoding="utf-8")
    result = run("init", str(tmp_path), "--timezone", "Tokyo")
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == before.replace('"Europe/London"', '"Asia/Tokyo"')


def test_a_changed_from_moves_the_contact_address_that_followed_it(tmp_path: Path) -> None:
    """publication.email, written by init from the From, follows a new From."""
    run("init", str(tmp_path), *OPTIONS)
    assert run("init", str(tmp_path), "--from", "Sam <sam@loud.example.net>").exit_code == 0
    config = tomllib.loads((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert config["publication"]["email"] == "sam@loud.example.net"
    assert config["newsletter"]["from"] == "Sam <sam@loud.example.net>"


def test_a_rerun_on_an_unreadable_config_names_it(tmp_path: Path) -> None:
    """A config.toml that is not TOML is named and left alone."""
    (tmp_path / "config.toml").write_text("title = = x\n")
    result = run("init", str(tmp_path), "--title", "T")
    assert result.exit_code == 1
    assert "config.toml" in result.output and "Traceback" not in result.output
    assert (tmp_path / "config.toml").read_text() == "title = = x\n"


def test_a_failed_write_leaves_the_old_config_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk while config.toml is rewritten: told, and the old file stays as it was."""
    run("init", str(tmp_path), *OPTIONS)
    path = tmp_path / "config.toml"
    before = path.read_text(encoding="utf-8")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(starter.os, "fsync", full)
    result = run("init", str(tmp_path), "--title", "Loud")
    assert result.exit_code == 1
    assert "No space left on device" in result.output
    assert path.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".config")) == []
