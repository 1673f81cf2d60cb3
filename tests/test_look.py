"""How the publication looks: its colour, logo and icon, dark mode, and who the mail is from.

The palette's contrast is computed with WCAG's formulas for light and dark and for
accents from pale to dark; the newsletter is rendered through premailer as it is sent;
the From header travels through a real SMTP server on loopback and is parsed back with
the email package; pages are fetched from the app in-process.
"""

from __future__ import annotations

import asyncio
import email
import email.header
import email.policy
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from fakes import SMTPServer

from publisher.config import Config, parse_config
from publisher.content import palette
from publisher.content.articles import parse_article
from publisher.delivery.smtp import SmtpProvider
from publisher.errors import ConfigError
from publisher.mail import newsletter
from publisher.mail.mime import MessageTemplate, Recipient, message_id_for, split_mailbox
from publisher.site.archive import render_archive
from publisher.web import create_app

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ACCENTS = ("#1d5c63", "#ffd700", "#ffffff", "#000000", "#808080", "#ff0000", "#7ab8ff", "#000080", "#00ff00")
ARTICLE = """---
title: Rest and repair
date: 2026-02-10 07:30
author: Dana Reyes, LCSW
summary: What a pause does.
---

Rest is not a reward. [A review](https://example.org/review) says so.
"""


def make_config(root: Path, *, sender: str = "'Dana Reyes <dana@example.org>'", extra: str = "") -> Config:
    text = f"""
[publication]
title = "Harbor Notes"
url = "https://notes.example.org/"
postal_address = "12 Wharf Street, Portland"
{extra}

[newsletter]
from = {sender}
"""
    return parse_config(text, root=root, env={"PUBLISHER_SECRET": "s" * 40})


def rendered(config: Config) -> str:
    article = parse_article(ARTICLE, source="2026-02-10-rest.md", config=config)
    return newsletter.render_issue(config, newsletter.issue_for_article(config, article), NOW).html


# The colour setting


def test_accent_colour_is_checked_with_the_key_and_line(tmp_path: Path) -> None:
    """A colour that is not #rrggbb is refused, naming the key, its line and the form wanted."""
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, extra='accent_color = "teal"')
    message = str(caught.value)
    assert "config.toml:6: [publication] accent_color must be a colour written #rrggbb" in message
    assert "'teal'" in message


def test_accent_colour_defaults_and_is_read_in_any_case(tmp_path: Path) -> None:
    """Without the key the house colour is used; #ABCDEF is taken as #abcdef."""
    assert make_config(tmp_path)["publication.accent_color"] == palette.DEFAULT_ACCENT
    assert make_config(tmp_path, extra='accent_color = "#ABCDEF"')["publication.accent_color"] == "#abcdef"


# Contrast


@pytest.mark.parametrize("accent", ACCENTS)
def test_every_text_colour_keeps_4_5_to_1_in_light_and_dark(accent: str) -> None:
    """Body text, headings, muted text and links read at 4.5:1 or more on every background,
    in both schemes, whatever accent the author picks."""
    colors = palette.palette(accent)
    for scheme in (colors.light, colors.dark):
        for role in ("text", "heading", "muted", "link"):
            for background in scheme.backgrounds:
                ratio = palette.contrast(getattr(scheme, role), background)
                assert ratio >= 4.5, f"{accent}: {role} {getattr(scheme, role)} on {background} is {ratio:.2f}:1"


@pytest.mark.parametrize("accent", ACCENTS)
def test_button_text_is_chosen_from_the_accents_luminance(accent: str) -> None:
    """Text on the accent is black on a pale accent and white on a dark one, at 4.5:1 or more."""
    colors = palette.palette(accent)
    expected = "#000000" if palette.luminance(accent) > 0.18 else "#ffffff"
    assert colors.light.on_accent == colors.dark.on_accent == expected
    assert palette.contrast(colors.light.on_accent, accent) >= 4.5


def test_a_readable_accent_is_kept_as_chosen() -> None:
    """A dark enough accent is the link colour itself on the light page, not a shade of it."""
    assert palette.palette("#1d5c63").light.link == "#1d5c63"
    assert palette.palette("#ffd700").light.link != "#ffd700"


def test_contrast_matches_wcag_reference_values() -> None:
    """Black on white is 21:1, and #767676 on white the well-known 4.54:1."""
    assert round(palette.contrast("#000000", "#ffffff"), 2) == 21.0
    assert round(palette.contrast("#767676", "#ffffff"), 2) == 4.54


# The newsletter


def test_newsletter_carries_the_accent_colour(tmp_path: Path) -> None:
    """Links and the masthead rule take the author's colour (darkened where it would not read)."""
    html = rendered(make_config(tmp_path, extra='accent_color = "#8a1c7c"'))
    assert 'href="https://example.org/review" style="color:#8a1c7c' in html
    assert "border-bottom:3px solid #8a1c7c" in html
    pale = rendered(make_config(tmp_path, extra='accent_color = "#ffd700"'))
    link = palette.palette("#ffd700").light.link
    assert f'href="https://example.org/review" style="color:{link}' in pale


def test_newsletter_shows_the_logo_in_its_masthead(tmp_path: Path) -> None:
    """A logo relative to the site becomes an absolute image in the masthead, with the title beside it."""
    html = rendered(make_config(tmp_path, extra='logo = "/images/logo.png"'))
    masthead = re.search(r'<td class="masthead".*?</td>', html, re.DOTALL)
    assert masthead is not None
    assert 'src="https://notes.example.org/images/logo.png"' in masthead.group(0)
    assert "Harbor Notes</a>" in masthead.group(0)


def test_an_svg_logo_is_warned_about(tmp_path: Path) -> None:
    """Gmail and Outlook show no SVG in mail: rendering says so, naming the key and what to use."""
    config = make_config(tmp_path, extra='logo = "/images/logo.svg?v=2"')
    article = parse_article(ARTICLE, source="2026-02-10-rest.md", config=config)
    issue = newsletter.render_issue(config, newsletter.issue_for_article(config, article), NOW)
    (warning,) = [w for w in issue.warnings if "logo" in w]
    assert "[publication] logo '/images/logo.svg?v=2' is an SVG image" in warning and "Use a PNG" in warning
    png = make_config(tmp_path, extra='logo = "/images/logo.png"')
    assert not [w for w in newsletter.render_issue(png, newsletter.issue_for_article(png, article), NOW).warnings
                if "logo" in w]


def test_newsletter_without_a_logo_has_no_image_in_its_masthead(tmp_path: Path) -> None:
    """No logo, no empty image."""
    masthead = re.search(r'<td class="masthead".*?</td>', rendered(make_config(tmp_path)), re.DOTALL)
    assert masthead is not None and "<img" not in masthead.group(0)


def test_dark_mode_block_survives_premailer(tmp_path: Path) -> None:
    """After inlining, a <style> block still holds the prefers-color-scheme rules, with the
    dark palette's colours marked !important (or the inline styles would win)."""
    html = rendered(make_config(tmp_path))
    dark = palette.palette(palette.DEFAULT_ACCENT).dark
    style = re.search(r"<style[^>]*>(.*?)</style>", html, re.DOTALL)
    assert style is not None
    block = style.group(1)[style.group(1).index("@media (prefers-color-scheme: dark)"):]
    assert f"background-color: {dark.surface} !important" in block
    assert f"color: {dark.text} !important" in block
    assert f"color: {dark.link} !important" in block


def test_newsletter_declares_both_colour_schemes(tmp_path: Path) -> None:
    """The color-scheme and supported-color-schemes tags tell Apple Mail the message has dark colours."""
    html = rendered(make_config(tmp_path))
    assert '<meta name="color-scheme" content="light dark">' in html
    assert '<meta name="supported-color-schemes" content="light dark">' in html
    assert "light only" not in html


# From


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    try:
        yield server
    finally:
        server.stop()


def sent_from(tmp_path: Path, server: SMTPServer, sender: str, title: str = "Harbor Notes") -> EmailMessage:
    """The From header of a newsletter sent through the SMTP server, parsed back."""
    config = parse_config(
        f'[publication]\ntitle = "{title}"\nurl = "https://notes.example.org/"\n'
        f"[newsletter]\nfrom = {sender}\n",
        root=tmp_path,
    )
    template = MessageTemplate.from_rendered(
        config, newsletter.render_issue(
            config,
            newsletter.issue_for_article(config, parse_article(ARTICLE, source="2026-02-10-rest.md", config=config)),
            NOW,
        ),
    )
    reader = Recipient(
        delivery_id=1, email="reader@example.net", name="Reader",
        unsubscribe_url="https://notes.example.org/unsubscribe/t", message_id=message_id_for("i1.d1", "example.org"),
    )
    provider = SmtpProvider(host=server.host, port=server.port, security="none", timeout=5.0)
    try:
        provider.send(template, [reader], now=NOW)
    finally:
        provider.close()
    (received,) = server.messages
    return email.message_from_bytes(received.data, policy=email.policy.default)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("'\"Dana Reyes, LCSW\" <dana@example.org>'", "Dana Reyes, LCSW"),
        ("'Dana Reyes, LCSW <dana@example.org>'", "Dana Reyes, LCSW"),
        ("'Dana \"DR\" Reyes <dana@example.org>'", 'Dana "DR" Reyes'),
        ('"Zoë Müller, Psy.D. <zoe@example.org>"', "Zoë Müller, Psy.D."),
    ],
    ids=["quoted-comma", "bare-comma", "quotes", "non-ascii"],
)
def test_from_carries_the_display_name(tmp_path: Path, smtp_server: SMTPServer, written: str, name: str) -> None:
    """The name arrives whole: a comma or quotes quoted, other scripts as RFC 2047 encoded-words."""
    message = sent_from(tmp_path, smtp_server, written)
    (address,) = message["From"].addresses
    assert address.display_name == name
    assert address.addr_spec in ("dana@example.org", "zoe@example.org")
    assert smtp_server.messages[0].data.isascii()


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"Dana Reyes, LCSW" <dana@example.org>', ("Dana Reyes, LCSW", "dana@example.org")),
        ("Dana Reyes, LCSW <dana@example.org>", ("Dana Reyes, LCSW", "dana@example.org")),
        ('"Dana \\"DR\\" Reyes" <dana@example.org>', ('Dana "DR" Reyes', "dana@example.org")),
        ("dana@example.org", ("", "dana@example.org")),
    ],
)
def test_split_mailbox_reads_a_sender_as_an_author_writes_it(written: str, expected: tuple[str, str]) -> None:
    """A comma inside the name, quoted or not, stays in the name: one mailbox, not two."""
    assert split_mailbox(written) == expected


def test_a_bare_address_is_sent_under_the_publications_name(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """`from = "dana@example.org"` reaches readers as "Harbor Light Notes" <dana@example.org>."""
    message = sent_from(tmp_path, smtp_server, '"dana@example.org"', title="Harbor Light Notes")
    (address,) = message["From"].addresses
    assert (address.display_name, address.addr_spec) == ("Harbor Light Notes", "dana@example.org")


def test_a_long_name_in_another_script_is_folded_into_encoded_words(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    """A name past one encoded-word's length is split on whole characters, each line under 78."""
    name = "عيادة المرفأ للإرشاد النفسي والأسري في مدينة بورتلاند"
    sent_from(tmp_path, smtp_server, f'"{name} <dana@example.org>"')
    header = re.search(rb"^From: .*?(?=^\S)", smtp_server.messages[0].data, re.DOTALL | re.MULTILINE)
    assert header is not None
    assert all(len(line) <= 78 for line in header.group(0).splitlines())
    # The legacy decoder joins adjacent encoded-words as RFC 2047 says (the newer parser
    # puts a space between them, which RFC 2047 section 6.2 forbids).
    decoded = "".join(
        part.decode(charset or "ascii") if isinstance(part, bytes) else part
        for part, charset in email.header.decode_header(header.group(0).decode("ascii")[6:])
    )
    assert decoded.startswith(name)


def test_a_from_without_an_address_names_the_key(tmp_path: Path) -> None:
    """A From that holds no address is refused with the key and an example."""
    config = make_config(tmp_path, sender='"Dana Reyes"')
    with pytest.raises(ConfigError, match=r"\[newsletter\] from must be an address such as"):
        MessageTemplate.from_rendered(config, newsletter.render_issue(
            config,
            newsletter.issue_for_article(config, parse_article(ARTICLE, source="2026-02-10-rest.md", config=config)),
            NOW,
        ))


# Icons


def _icon(html: str) -> str:
    found = re.search(r'<link rel="icon" href="([^"]+)"', html)
    assert found is not None, "no icon link on the page"
    return found.group(1).replace("&amp;", "&").replace("&#34;", '"')


def test_site_pages_have_a_default_icon_in_the_accent_colour(tmp_path: Path) -> None:
    """Without a logo every archive page carries an SVG icon: the title's letter on the accent."""
    config = make_config(tmp_path, extra='accent_color = "#8a1c7c"')
    article = parse_article(ARTICLE, source="2026-02-10-rest.md", config=config)
    files, _ = render_archive(config, [article])
    page = files["index.html"].decode("utf-8")
    icon = _icon(page)
    assert icon.startswith("data:image/svg+xml,")
    svg = unquote(icon.removeprefix("data:image/svg+xml,"))
    assert 'fill="#8a1c7c"' in svg and ">H</text>" in svg
    assert _icon(files["rest/index.html"].decode("utf-8")) == icon


def test_site_pages_take_the_accent_colour(tmp_path: Path) -> None:
    """The site's header rule is the colour as chosen; its links are that colour made readable,
    lighter in the dark scheme."""
    config = make_config(tmp_path, extra='accent_color = "#ffd700"')
    files, _ = render_archive(config, [parse_article(ARTICLE, source="2026-02-10-rest.md", config=config)])
    page = files["index.html"].decode("utf-8")
    colors = palette.palette("#ffd700")
    assert "--brand: #ffd700;" in page
    light, dark = page.split("@media (prefers-color-scheme: dark)", 1)
    assert f"--accent: {colors.light.link};" in light and f"--accent: {colors.dark.link};" in dark


def test_site_pages_use_the_logo_as_their_icon(tmp_path: Path) -> None:
    """With a logo, the logo is the icon, as an absolute address."""
    config = make_config(tmp_path, extra='logo = "/images/logo.png"')
    article = parse_article(ARTICLE, source="2026-02-10-rest.md", config=config)
    files, _ = render_archive(config, [article])
    assert _icon(files["index.html"].decode("utf-8")) == "https://notes.example.org/images/logo.png"


def test_site_header_shows_the_logo_beside_the_title(tmp_path: Path) -> None:
    """The archive's header carries the logo (decorative: the title beside it names the site)."""
    config = make_config(tmp_path, extra='logo = "/images/logo.png"')
    files, _ = render_archive(config, [parse_article(ARTICLE, source="2026-02-10-rest.md", config=config)])
    header = re.search(r'<p class="site-title">.*?</p>', files["index.html"].decode("utf-8"), re.DOTALL)
    assert header is not None
    logo = '<img class="site-logo" src="https://notes.example.org/images/logo.png" alt="">'
    assert logo + "Harbor Notes" in header.group(0)


def _app_pages(tmp_path: Path, extra: str = "") -> tuple[str, str]:
    """(the desk's sign-in page, the subscribe page) from the app in-process."""
    config = make_config(tmp_path, extra=extra)
    (tmp_path / "public").mkdir(exist_ok=True)
    app = create_app(config)
    transport = httpx.ASGITransport(app=app)

    async def fetch() -> tuple[str, str]:
        async with httpx.AsyncClient(transport=transport, base_url="https://notes.example.org") as client:
            desk = await client.get("/desk/login")
            subscribe = await client.get("/subscribe")
            assert desk.status_code == subscribe.status_code == 200
            return desk.text, subscribe.text

    return asyncio.run(fetch())


def test_desk_and_subscription_pages_have_an_icon(tmp_path: Path) -> None:
    """The desk and the reader's pages show the same default icon as the site."""
    desk, subscribe = _app_pages(tmp_path)
    assert _icon(desk).startswith("data:image/svg+xml,")
    assert _icon(desk) == _icon(subscribe)


def test_desk_shows_a_logo_served_from_its_own_address(tmp_path: Path) -> None:
    """A logo on the app's own site is the desk's icon too (its policy allows images from itself)."""
    desk, _ = _app_pages(tmp_path, 'logo = "/images/logo.png"')
    assert _icon(desk) == "https://notes.example.org/images/logo.png"


def test_desk_keeps_the_default_icon_for_a_logo_elsewhere(tmp_path: Path) -> None:
    """A logo on another host would be refused by the desk's policy: the default icon stands in."""
    desk, subscribe = _app_pages(tmp_path, 'logo = "https://cdn.example.com/logo.png"')
    assert _icon(desk).startswith("data:image/svg+xml,")
    assert _icon(subscribe) == "https://cdn.example.com/logo.png"
