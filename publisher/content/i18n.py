"""The publication's language: message catalogs for every reader-facing string, and dates.

Templates take their words from gettext catalogs (Babel's tools make them; Jinja's i18n
extension reads them), chosen by `publication.language`. A tag such as "de-AT" uses the
"de_AT" catalog if there is one, else "de"; a language with no catalog at all reads in
English, and the build says so (`catalog_warning`), since an author writing in Polish
would otherwise find English buttons only once the first subscriber asks.

Catalogs live in publisher/locale/<lang>/LC_MESSAGES/messages.po, compiled beside it to
messages.mo, which is what is read (and what the wheel carries). After editing a .po:

    pybabel extract -F babel.cfg -o publisher/locale/messages.pot .
    pybabel update -i publisher/locale/messages.pot -d publisher/locale
    pybabel compile -d publisher/locale

A test fails when a template string is missing from a catalog, untranslated, or when a
.mo file no longer matches its .po.

Dates are formatted by Babel from CLDR ("February 10, 2026", "10. Februar 2026",
"10 فبراير 2026"), so they read right even in a language without a catalog.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import babel
import babel.dates
from babel.support import NullTranslations, Translations

__all__ = [
    "CATALOG_LANGUAGES",
    "LOCALE_DIR",
    "babel_locale",
    "catalog_warning",
    "format_date",
    "has_catalog",
    "translations",
]

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"

CATALOG_LANGUAGES = ("ar", "de", "en", "es", "fr")
"""The languages publisher ships complete catalogs for."""


def _candidates(language: str) -> list[str]:
    """Catalog names to try for a BCP 47 tag, most specific first: "pt-BR" -> pt_BR, pt."""
    parts = [p for p in language.strip().replace("_", "-").split("-") if p]
    if not parts:
        return ["en"]
    names = []
    for length in range(len(parts), 0, -1):
        head = parts[:length]
        names.append("_".join([head[0].lower(), *(p.upper() if len(p) == 2 else p for p in head[1:])]))
    return names


def has_catalog(language: str) -> bool:
    """Whether a catalog (compiled) exists for the language or its base language."""
    return any((LOCALE_DIR / name / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file() for name in _candidates(language))


@functools.lru_cache(maxsize=32)
def translations(language: str) -> NullTranslations:
    """The gettext catalog for `language`; untranslated (English) when there is none."""
    return Translations.load(str(LOCALE_DIR), _candidates(language), DOMAIN)


def catalog_warning(language: str, config_file: str = "config.toml") -> str:
    """A build warning for a language without a catalog; "" when there is one."""
    if has_catalog(language):
        return ""
    shipped = ", ".join(CATALOG_LANGUAGES)
    return (
        f"{config_file}: [publication] language {language!r} has no message catalog, so buttons, "
        f"footers and notices read in English (dates do follow the language); catalogs ship for "
        f"{shipped}: choose one of these, or add a catalog (README, \"Languages\")"
    )


@functools.lru_cache(maxsize=32)
def babel_locale(language: str) -> babel.Locale:
    """Babel's locale for a language tag (its closest known one; English when none)."""
    for name in _candidates(language):
        try:
            return babel.Locale.parse(name)
        except (ValueError, babel.UnknownLocaleError):
            continue
    return babel.Locale.parse("en")


def format_date(moment: datetime, language: str, zone: ZoneInfo) -> str:
    """The day of `moment` in `zone`, written the way the language writes dates."""
    local = moment.astimezone(zone)
    return babel.dates.format_date(local.date(), format="long", locale=babel_locale(language))
