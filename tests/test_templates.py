"""Template lookup and the helpers every template shares."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from publisher.config import parse_config
from publisher.content.templates import template_environment, text_direction
from publisher.mail import newsletter
from publisher.models import Article

CONFIG = """
[publication]
title = "Notes"
url = "https://example.org/"
language = "{language}"
postal_address = "1 Test Street"

[newsletter]
from = "T <t@example.org>"
"""


def test_text_direction() -> None:
    """Arabic, Hebrew and their regional tags are right to left; English and unknown tags are not."""
    assert text_direction("ar") == "rtl"
    assert text_direction("he-IL") == "rtl"
    assert text_direction("en") == "ltr"
    assert text_direction("") == "ltr"


def test_newsletter_of_a_right_to_left_publication(tmp_path: Path) -> None:
    """A Hebrew publication's newsletter is laid out right to left; an English one is not."""
    now = datetime(2026, 11, 20, tzinfo=UTC)
    article = Article(
        slug="s", title="T", date=now, html="<p>x</p>", id="tag:example.org,2026-11-20:/s",
        url="https://example.org/s/",
    )
    for language, expected in (("he", True), ("en", False)):
        config = parse_config(CONFIG.format(language=language), root=tmp_path, env={})
        rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), now)
        assert ('dir="rtl"' in rendered.html.split("<head", 1)[0]) is expected


def test_publication_templates_override_the_defaults(tmp_path: Path) -> None:
    """A file in the publication's templates/ wins over the default of the same name."""
    (tmp_path / "templates" / "email").mkdir(parents=True)
    (tmp_path / "templates" / "email" / "issue.txt").write_text("mine\n")
    config = parse_config(CONFIG.format(language="en"), root=tmp_path, env={})
    assert template_environment(config).get_template("email/issue.txt").render() == "mine\n"
