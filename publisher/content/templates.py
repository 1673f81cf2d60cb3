"""Where templates come from: the publication's folder first, then the defaults shipped
with publisher, so an author overrides any template by giving a file the same name.

Every environment speaks the publication's language: `{% trans %}` and `_()` read the
catalog of `publication.language` (see `publisher.content.i18n`), and the `longdate` filter
writes a date the way that language does, in the publication's time zone. Every template
sees the publication's colours as `palette` and its default icon as `default_icon`."""

from __future__ import annotations

from pathlib import Path

import jinja2

from publisher.config import Config
from publisher.content import i18n, palette
from publisher.models import split_person

__all__ = ["default_templates_dir", "template_environment", "template_loader", "text_direction"]

# Languages written right to left (ISO 639 codes), for dir="rtl" on pages and emails.
_RTL_LANGUAGES = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ku", "ps", "sd", "syr", "ug", "ur", "yi"})


def text_direction(language: str) -> str:
    """ "rtl" for a right-to-left language tag such as "ar" or "he-IL", else "ltr"."""
    return "rtl" if language.split("-")[0].lower() in _RTL_LANGUAGES else "ltr"


def default_templates_dir() -> Path:
    """The default templates: inside the installed wheel, or the repository's templates/."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "_templates"
    if packaged.is_dir():
        return packaged
    return here.parent / "templates"


def template_loader(config: Config) -> jinja2.FileSystemLoader:
    """Where `template_environment` finds a template by name: the overrides, then the defaults."""
    search = [config.path_of("build.templates"), default_templates_dir()]
    return jinja2.FileSystemLoader([str(p) for p in search if p.is_dir()])


def template_environment(
    config: Config, *, autoescape: bool = True, bytecode_cache: jinja2.BytecodeCache | None = None
) -> jinja2.Environment:
    """A Jinja environment over the publication's overrides and the defaults.

    Undefined names raise instead of rendering as empty, so a typo in an override is
    reported rather than shipped to every subscriber. `bytecode_cache` keeps compiled
    templates between processes (`publisher.site.compiled_templates`).
    """
    environment = jinja2.Environment(
        loader=template_loader(config),
        # Plain-text templates (.txt) are not escaped; everything else is.
        autoescape=jinja2.select_autoescape(["html", "xml", "htm"], default_for_string=autoescape, default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
        bytecode_cache=bytecode_cache,
    )
    # Whitespace inside {% trans %} is folded, so a catalog's entries do not depend on
    # how a template is indented (babel.cfg extracts with the same rule).
    environment.policies["ext.i18n.trimmed"] = True
    language = str(config["publication.language"])
    environment.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    zone = config.tz
    environment.filters["direction"] = text_direction
    environment.filters["longdate"] = lambda moment: i18n.format_date(moment, language, zone)
    # "Dana Reyes <dana@example.org>" shows as "Dana Reyes" on pages and in mail.
    environment.filters["person"] = lambda text: split_person(str(text))[0] or str(text)
    # The publication's colours, light and dark (publisher.content.palette), and its default icon.
    colors = palette.palette(str(config["publication.accent_color"]))
    environment.globals["palette"] = colors
    environment.globals["default_icon"] = palette.icon_data_uri(str(config["publication.title"]), colors)
    return environment
