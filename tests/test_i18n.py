"""Languages: complete catalogs, compiled catalogs in step, newsletters and pages per language."""

from __future__ import annotations

import gettext
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from test_newsletter import NOW, make_article, make_config
from web_support import SECRET, AppClient, make_publication

from publisher.config import Config, load_config
from publisher.content import i18n
from publisher.mail import newsletter, tokens
from publisher.models import SubscriberStatus
from publisher.store import open_store, subscribers
from publisher.web import create_app

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "newsletter" / "languages"
REGENERATE = os.environ.get("PUBLISHER_REGENERATE_GOLDEN") == "1"
SHIPPED = ("ar", "de", "en", "es", "fr")


def source_messages() -> set[str | tuple[str, ...]]:
    """Every translatable string in the package and the default templates, as Babel extracts it."""
    method_map = [("publisher/**.py", "python"), ("templates/**.html", "jinja2"), ("templates/**.txt", "jinja2")]
    options = {
        "templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"},
        "templates/**.txt": {"extensions": "jinja2.ext.i18n", "trimmed": "true"},
    }
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=method_map, options_map=options
    ):
        found.add(message)
    return found


def catalog(language: str) -> dict[str | tuple[str, ...], object]:
    path = i18n.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return {m.id: m.string for m in read_po(handle) if m.id}


def test_shipped_languages_are_the_catalogs() -> None:
    """The languages the code names are exactly the folders of catalogs."""
    folders = sorted(p.name for p in i18n.LOCALE_DIR.iterdir() if p.is_dir())
    assert tuple(folders) == i18n.CATALOG_LANGUAGES == SHIPPED


@pytest.mark.parametrize("language", SHIPPED)
def test_catalog_is_complete(language: str) -> None:
    """Every string of every template and of the code is in the catalog, translated, and
    the catalog holds nothing that is no longer used."""
    wanted = source_messages()
    entries = catalog(language)
    assert wanted, "no strings extracted: the extraction rules are broken"
    assert set(entries) == wanted
    untranslated = [m for m, s in entries.items() if not s or (isinstance(s, tuple | list) and not all(s))]
    assert untranslated == []


@pytest.mark.parametrize("language", SHIPPED)
def test_compiled_catalog_matches_its_source(language: str) -> None:
    """messages.mo says what messages.po says (recompile with `pybabel compile -d publisher/locale`)."""
    folder = i18n.LOCALE_DIR / language / "LC_MESSAGES"
    with (folder / "messages.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for message, translation in catalog(language).items():
        if isinstance(message, tuple):
            forms = set(translation)  # type: ignore[call-overload]
            assert {compiled.ngettext(message[0], message[1], n) for n in [*range(200), 1_000_000]} == forms, message
        else:
            assert compiled.gettext(message) == translation, message


@pytest.mark.parametrize("language", SHIPPED)
def test_translations_keep_their_placeholders(language: str) -> None:
    """A translation names the same %(...)s values as its English, so no value is lost or raises."""
    names = re.compile(r"%\((\w+)\)[sd]|\{(\w+)\}")
    for message, translation in catalog(language).items():
        english = message if isinstance(message, str) else message[1]
        forms = [translation] if isinstance(translation, str) else list(translation)  # type: ignore[call-overload]
        for form in forms:
            if isinstance(message, tuple) and "%(count)d" not in form:
                continue  # Arabic's zero, one and two say the number in words.
            assert set(names.findall(form)) == set(names.findall(english)), (message, form)


def test_regional_tag_uses_the_language_catalog() -> None:
    """"de-AT" reads the German catalog; "pl" has none and reads English, with a warning."""
    assert i18n.translations("de-AT").gettext("Subscribe") == "Abonnieren"
    assert i18n.translations("pl").gettext("Subscribe") == "Subscribe"
    assert i18n.catalog_warning("de-AT") == ""
    warning = i18n.catalog_warning("pl")
    assert "'pl'" in warning and "no message catalog" in warning


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "February 10, 2026"),
        ("de", "10. Februar 2026"),
        ("fr", "10 février 2026"),
        ("es", "10 de febrero de 2026"),
        ("ar", "10 فبراير 2026"),
        ("pl", "10 lutego 2026"),
    ],
)
def test_dates_in_the_language(language: str, expected: str) -> None:
    """Dates are written the language's way, in the publication's zone (Babel, CLDR)."""
    config = make_config()
    assert i18n.format_date(datetime(2026, 2, 10, 14, 30, tzinfo=UTC), language, config.tz) == expected


def check_golden(name: str, data: str) -> None:
    path = GOLDEN / name
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data, encoding="utf-8")
    assert data == path.read_text(encoding="utf-8"), f"{name} differs; PUBLISHER_REGENERATE_GOLDEN=1 rewrites it"


@pytest.mark.parametrize("language", SHIPPED)
def test_golden_newsletter_per_language(language: str) -> None:
    """One article's newsletter, HTML and text, in each shipped language, matches its golden files."""
    config = make_config(**{"publication.language": f'"{language}"'})
    issue = newsletter.issue_for_article(config, make_article())
    rendered = newsletter.render_issue(config, issue, NOW)
    check_golden(f"{language}/issue.html", rendered.html)
    check_golden(f"{language}/issue.txt", rendered.text)


def test_arabic_newsletter_is_right_to_left() -> None:
    """The Arabic newsletter keeps dir="rtl" and its words come from the catalog."""
    config = make_config(**{"publication.language": '"ar"'})
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, make_article()), NOW)
    assert '<html lang="ar" dir="rtl">' in rendered.html
    assert "ألغِ الاشتراك بنقرة واحدة" in rendered.text
    assert "Unsubscribe" not in rendered.text


def test_arabic_newsletter_lines_start_on_the_right() -> None:
    """Inlined styles follow the direction: text starts on the right, and quotes and lists
    are inset (and a quote ruled) on the right, never the left."""
    body = "<p>فقرة</p><blockquote><p>اقتباس</p></blockquote><ul><li>بند</li></ul><ol><li>أول</li></ol>"
    arabic = make_config(**{"publication.language": '"ar"'})
    html = newsletter.render_issue(arabic, newsletter.issue_for_article(arabic, make_article(html=body)), NOW).html
    assert "text-align:left" not in html and "text-align:right" in html
    quote = re.search(r'<blockquote style="([^"]*)"', html)
    assert quote and "border-right:3px" in quote[1] and "padding:4px 16px 4px 0" in quote[1], html
    assert re.search(r'<ul style="[^"]*padding:0 24px 0 0', html)
    assert re.search(r'<ol style="[^"]*padding:0 28px 0 0', html)
    english = make_config()
    html = newsletter.render_issue(english, newsletter.issue_for_article(english, make_article(html=body)), NOW).html
    assert "text-align:right" not in html and re.search(r'<blockquote style="[^"]*border-left:3px', html)


def test_digest_subject_counts_in_the_language() -> None:
    """A digest's subject uses the language's plural forms."""
    articles = [make_article(f"a-{n}") for n in range(3)]
    german = make_config(**{"publication.language": '"de"'})
    arabic = make_config(**{"publication.language": '"ar"'})
    assert newsletter.issue_for_digest(german, articles, NOW).subject == "3 neue Artikel"
    assert newsletter.issue_for_digest(german, articles[:1], NOW).subject == "1 neuer Artikel"
    assert newsletter.issue_for_digest(arabic, articles[:2], NOW).subject == "مقالان جديدان"


def test_authors_own_reason_wins_over_the_catalog() -> None:
    """A configured footer reason is used as written, in any language."""
    config = make_config(**{"publication.language": '"fr"', "newsletter.reason": '"Parce que {publication}."'})
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, make_article()), NOW)
    assert "Parce que Harbor Notes." in rendered.text
    assert "Vous recevez" not in rendered.text


def test_confirmation_mail_in_the_language() -> None:
    """The double opt-in mail (subject, text and button) speaks the publication's language."""
    config = make_config(**{"publication.language": '"es"'})
    rendered = newsletter.render_confirmation(config, "https://notes.example.org/confirm/t", NOW)
    assert rendered.subject == "Confirma tu suscripción a Harbor Notes"
    assert "Sí, suscribirme" in rendered.html
    assert "Para confirmar, abre esta dirección:" in rendered.text


def publication_in(tmp_path: Path, language: str) -> Config:
    make_publication(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(path.read_text().replace('language = "en"', f'language = "{language}"', 1))
    return load_config(path, env={"PUBLISHER_SECRET": SECRET})


def test_subscription_pages_follow_the_language(tmp_path: Path) -> None:
    """The subscribe form, its error, and the unsubscribe pages are in French."""
    config = publication_in(tmp_path, "fr")
    engine = open_store(config.store_url)
    client = AppClient(create_app(config, engine=engine))
    form = client.get("/subscribe")
    assert '<html lang="fr">' in form.text and "Adresse e-mail" in form.text
    wrong = client.post("/subscribe", data={"email": "not an address"})
    assert "Cela ne ressemble pas à une adresse e-mail" in wrong.text
    reader = subscribers.add(engine, "lecteur@example.org", status=SubscriberStatus.ACTIVE, now=NOW)
    path = f"/unsubscribe/{tokens.sign(SECRET, 'unsubscribe', subscribers.link_key(engine, reader.id))}"
    ask = client.get(path)
    assert "Se désabonner" in ask.text
    done = client.post(path, data={})
    assert "Vous êtes désabonné·e" in done.text
    bad = client.get("/unsubscribe/nonsense")
    assert "Ce lien ne fonctionne pas" in bad.text


def test_arabic_subscription_pages_are_rtl(tmp_path: Path) -> None:
    """The Arabic subscribe page is right-to-left and in Arabic."""
    config = publication_in(tmp_path, "ar")
    client = AppClient(create_app(config, engine=open_store(config.store_url)))
    page = client.get("/subscribe")
    assert '<html lang="ar" dir="rtl">' in page.text
    assert "عنوان البريد الإلكتروني" in page.text

