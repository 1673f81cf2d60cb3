"""Captioned pictures: a lone picture with a title in quotes becomes a figure, on the site,
in the feeds and in the email (inlined CSS, the caption on its own line in the text part)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_newsletter import NOW, make_article, make_config

from publisher.config import Config, parse_config
from publisher.content import parse_article
from publisher.mail import newsletter
from publisher.models import Article

CONFIG = """
[publication]
title = "Test Notes"
url = "https://notes.example.org/"
author = "Dana Reyes, LCSW"
timezone = "America/New_York"

[newsletter]
from = "Dana <dana@example.org>"
"""
LAMP = '![A lamp by a bed](https://notes.example.org/images/lamp.jpg "The lamp in our quiet room")'


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config(CONFIG, root=tmp_path, env={})


def article(config: Config, body: str) -> Article:
    text = f"---\ntitle: Rest\ndate: 2026-02-10 09:00\n---\n\n{body}"
    return parse_article(text, source="content/a.md", config=config)


def test_a_lone_picture_with_a_title_is_a_figure_with_that_caption(config: Config) -> None:
    """The title in quotes is the caption under the picture, not a tooltip as well."""
    html = article(config, f"Before.\n\n{LAMP}\n\nAfter.\n").html
    assert (
        '<figure><img src="https://notes.example.org/images/lamp.jpg" alt="A lamp by a bed">'
        "<figcaption>The lamp in our quiet room</figcaption></figure>"
    ) in html
    assert "title=" not in html


def test_only_a_picture_alone_in_its_paragraph_becomes_a_figure(config: Config) -> None:
    """Untitled pictures, blank titles, pictures in a sentence or a tight list stay as they were."""
    body = (
        f"{LAMP}\n\n"
        "![untitled](https://notes.example.org/u.jpg)\n\n"
        '![blank](https://notes.example.org/b.jpg "  ")\n\n'
        'See ![inline](https://notes.example.org/i.jpg "inline") here.\n\n'
        '- ![listed](https://notes.example.org/l.jpg "listed")\n- two\n'
    )
    html = article(config, body).html
    assert html.count("<figure>") == 1 and html.count("<figcaption>") == 1
    assert '<p><img src="https://notes.example.org/u.jpg" alt="untitled"></p>' in html
    assert '<p><img src="https://notes.example.org/b.jpg" alt="blank" title="  "></p>' in html
    assert 'See <img src="https://notes.example.org/i.jpg" alt="inline" title="inline"> here.' in html
    assert '<li><img src="https://notes.example.org/l.jpg" alt="listed" title="listed"></li>' in html


def test_a_caption_is_text_not_markup(config: Config) -> None:
    """Angle brackets in a caption are shown, never taken as tags."""
    html = article(config, '![x](https://notes.example.org/l.jpg "<b>Mine</b> & yours")\n').html
    assert "<figcaption>&lt;b&gt;Mine&lt;/b&gt; &amp; yours</figcaption>" in html


def test_a_captioned_picture_first_is_not_the_summary(config: Config) -> None:
    """The inbox preview is the first words written, not the caption of the picture above them."""
    made = article(config, f"{LAMP}\n\nMany people lie awake.\n")
    assert made.html.startswith("<figure>") and made.summary == "Many people lie awake."


def test_the_email_keeps_the_caption_under_the_picture_with_inlined_style(config: Config) -> None:
    """premailer inlines the caption's muted small type, and the text part has the caption
    on its own line after the picture's description."""
    html = article(config, f"Before.\n\n{LAMP}\n\nAfter.\n").html
    mail_config = make_config()
    issue = newsletter.issue_for_article(mail_config, make_article(html=html))
    rendered = newsletter.render_issue(mail_config, issue, NOW)
    markup = rendered.html if isinstance(rendered.html, str) else rendered.html.decode()
    caption = markup[markup.index("<figcaption") :]
    assert caption.startswith('<figcaption style="') and "font-size:13px" in caption.split(">")[0]
    assert caption.split(">", 1)[1].startswith("The lamp in our quiet room</figcaption></figure>")
    text = rendered.text if isinstance(rendered.text, str) else rendered.text.decode()
    assert "[Image: A lamp by a bed]\n\nThe lamp in our quiet room\n\nAfter." in text
