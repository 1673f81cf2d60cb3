"""config.toml parsing: typed values, defaults, and errors that name the key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.config import load_config, parse_config, settings_markdown
from publisher.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """
[publication]
title = "T"
url = "https://example.org/"

[newsletter]
from = "T <t@example.org>"
"""


def parse(text: str) -> object:
    return parse_config(text, root=Path("/pub"), env={})


def test_sample_config_loads() -> None:
    """The shipped sample publication's config.toml works as shipped."""
    config = load_config(ROOT / "config.toml", env={})
    assert config["delivery.provider"] == "maildir"
    assert config["publication.title"]


def test_defaults_applied() -> None:
    """Keys left out take the default from the settings table."""
    config = parse_config(MINIMAL, root=Path("/pub"), env={})
    assert config["feeds.entries"] == 20
    assert config["delivery.smtp.port"] == 587
    assert config.tz.key == "UTC"


def test_unknown_key_suggests() -> None:
    """A misspelt key is an error with a "did you mean" and the line."""
    text = MINIMAL + "\n[feeds]\nentires = 5\n"
    with pytest.raises(ConfigError, match=r"config.toml:10: unknown key 'feeds.entires'.*feeds.entries"):
        parse(text)


def test_wrong_type_names_key_and_line() -> None:
    """A value of the wrong type names the table, the key, the line and what is expected."""
    text = MINIMAL + "\n[delivery.smtp]\nport = \"twenty-five\"\n"
    with pytest.raises(ConfigError, match=r"config.toml:10: \[delivery.smtp\] port must be a whole number"):
        parse(text)


def test_missing_required_key() -> None:
    """A required key that is absent is named with its help."""
    with pytest.raises(ConfigError, match=r"\[newsletter\] from is required"):
        parse('[publication]\ntitle = "T"\nurl = "https://example.org/"\n')


def test_bad_timezone() -> None:
    """An unknown time zone is refused with an example of a good one."""
    with pytest.raises(ConfigError, match="IANA time zone"):
        parse(MINIMAL.replace('title = "T"', 'title = "T"\ntimezone = "Mars/Olympus"'))


def test_bad_toml() -> None:
    """Broken TOML is reported as such, with the parser's position."""
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse("[publication\n")


def test_relative_sqlite_url_resolved_against_config_folder() -> None:
    """A relative SQLite path lives beside config.toml, wherever publisher runs from."""
    config = parse_config(MINIMAL, root=Path("/pub"), env={})
    assert config.store_url == "sqlite:////pub/publisher.db"


def test_secret_from_file(tmp_path: Path) -> None:
    """NAME_FILE names a file that holds the secret."""
    secret = tmp_path / "s"
    secret.write_text("hunter2\n")
    config = parse_config(MINIMAL, root=tmp_path, env={"PUBLISHER_SECRET_FILE": str(secret)})
    assert config.secret("PUBLISHER_SECRET") == "hunter2"


def test_sources_tables() -> None:
    """[[sources]] entries are parsed with their own keys and defaults."""
    config = parse_config(
        MINIMAL + '\n[[sources]]\nurl = "https://blog.example.org/feed"\n', root=Path("/p"), env={}
    )
    assert config.sources[0].interval == 1800.0
    assert config.sources[0].name == "https://blog.example.org/feed"


def test_every_setting_documented_in_readme() -> None:
    """README.md's configuration table is exactly the settings table (regenerate with
    `python -m publisher.config`)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- settings:start -->\n", "<!-- settings:end -->"
    documented = readme[readme.index(start) + len(start) : readme.index(end)]
    assert documented == settings_markdown()


# Values checked for sense, not only type


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [
        ("[delivery]\ntimeout = 0", "timeout = 0", r"\[delivery\] timeout must be from 0.1 to 3,600, got 0"),
        ("[delivery]\ntimeout = nan", "timeout = nan", r"\[delivery\] timeout must be a finite number"),
        ("[delivery]\ntimeout = inf", "timeout = inf", r"\[delivery\] timeout must be a finite number"),
        ("[delivery]\nrate = inf", "rate = inf", r"\[delivery\] rate must be a finite number"),
        ("[delivery]\nconcurrency = 100000", "concurrency", r"\[delivery\] concurrency must be from 1 to 64"),
        ("[schedule]\ngrace_hours = nan", "grace_hours", r"\[schedule\] grace_hours must be a finite number"),
        ("[server]\nport = 99999", "port = 99999", r"\[server\] port must be from 1 to 65,535, got 99,999"),
        ("[server]\nport = 0", "port = 0", r"\[server\] port must be from 1 to 65,535"),
        ("[delivery.smtp]\nport = 70000", "port = 70000", r"\[delivery.smtp\] port must be from 1 to 65,535"),
        ("[feeds]\nentries = 0", "entries = 0", r"\[feeds\] entries must be from 1 to 1,000"),
        ("[delivery]\nmax_attempts = 0", "max_attempts", r"\[delivery\] max_attempts must be from 1 to 100"),
        ("[subscribe]\nper_ip_per_hour = 0", "per_ip_per_hour",
         r"\[subscribe\] per_ip_per_hour must be from 1 to 1,000,000"),
        ("[fetch]\ntimeout = -inf", "timeout", r"\[fetch\] timeout must be a finite number"),
    ],
)
def test_number_out_of_range_names_key_line_and_range(table: str, line: str, message: str) -> None:
    """Numbers that passed as the right type but crashed, hung or misbehaved are refused."""
    text = MINIMAL + "\n" + table + "\n"
    number = next(n for n, row in enumerate(text.splitlines(), start=1) if row.startswith(line))
    with pytest.raises(ConfigError, match=rf"config.toml:{number}: {message}"):
        parse(text)


def test_source_interval_zero_is_refused() -> None:
    """A watched feed polled every 0 seconds is refused, naming the entry."""
    text = MINIMAL + '\n[[sources]]\nurl = "https://blog.example.org/feed"\ninterval = 0\n'
    with pytest.raises(ConfigError, match=r"\[\[sources\]\] entry 1: interval must be from 60 to 604,800"):
        parse(text)


def test_every_number_has_a_documented_range() -> None:
    """Each int and float setting has a range, and the README's table shows it."""
    from publisher.config import SETTINGS, SOURCE_KEYS

    table = settings_markdown()
    for setting in (*SETTINGS, *SOURCE_KEYS):
        if setting.kind in ("int", "float"):
            assert setting.range is not None, setting.key
            assert f"Range: {setting.range_text}." in table


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("newsletter", "from", "x@y.z\\r\\nBcc: everyone@example.org"),
        ("newsletter", "from", "x@y.z\\nX: 1"),
        ("newsletter", "reply_to", "a@b.c\\r\\n"),
        ("newsletter", "subject", "{title}\\u2028Bcc: x"),
        ("publication", "title", "T\\r\\nX-Evil: 1"),
    ],
)
def test_header_text_with_line_breaks_is_refused(section: str, key: str, value: str) -> None:
    """Text that goes into mail headers may not carry CR, LF or other control characters."""
    tables = {
        "publication": {"title": "T", "url": "https://example.org/"},
        "newsletter": {"from": "T <t@example.org>"},
    }
    text = ""
    for name, values in tables.items():
        text += f"[{name}]\n"
        for item, setting in {**values, **({key: None} if name == section else {})}.items():
            text += f'{item} = "{value}"\n' if setting is None else f'{item} = "{setting}"\n'
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key} must be one line without control characters"):
        parse(text)


@pytest.mark.parametrize("url", ["https://example.org:99999/", "https://[x/", "https://example.org:port/"])
def test_url_that_cannot_be_split_is_refused(url: str) -> None:
    """A URL with a port past 65535 or a broken IPv6 bracket is a config error, not a crash."""
    with pytest.raises(ConfigError, match=r"\[publication\] url must be an absolute http\(s\) URL"):
        parse(MINIMAL.replace('url = "https://example.org/"', f'url = "{url}"'))


def test_trusted_proxies_must_be_addresses() -> None:
    """[server] trusted_proxies lists addresses or networks; anything else names the entry."""
    assert parse_config(MINIMAL + '\n[server]\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n',
                        root=Path("/p"), env={})["server.trusted_proxies"] == ("10.0.0.0/8", "::1")
    with pytest.raises(ConfigError, match=r"\[server\] trusted_proxies must list IP addresses.*'proxy.local'"):
        parse(MINIMAL + '\n[server]\ntrusted_proxies = ["proxy.local"]\n')


def test_config_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A config.toml saved with a UTF-8 BOM (as some Windows editors do) loads."""
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.lstrip().encode())
    assert load_config(path, env={})["publication.title"] == "T"


def test_every_problem_is_reported_at_once() -> None:
    """Three mistakes in one file: one error lists all three, each with its line."""
    text = (
        '[publication]\ntitle = "T"\nurl = "ftp://example.org/"\ntimezone = "Mars/Olympus"\n'
        '[newsletter]\nfrom = "T <t@example.org>"\n[delivery]\nconcurency = 4\n'
        '[[sources]]\nurl = 7\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse(text)
    problems = caught.value.problems
    assert len(problems) == 4, problems
    assert any(p.startswith("config.toml:3: [publication] url must be an absolute http(s) URL") for p in problems)
    assert any(p.startswith("config.toml:4: [publication] timezone must be an IANA time zone") for p in problems)
    assert any("unknown key 'delivery.concurency'" in p for p in problems)
    assert any("[[sources]] entry 1: url must be text" in p for p in problems)
    assert str(caught.value).count("\n") == 3


def test_check_prints_every_config_problem(tmp_path: Path) -> None:
    """`publisher check` shows one error line per problem and exits 1."""
    from click.testing import CliRunner

    from publisher.cli import cli

    (tmp_path / "config.toml").write_text('[publication]\ntitle = 5\n[newsletter]\nreply_to = 3\n')
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), "check"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 4, result.output  # title and reply_to wrong, url and from missing
