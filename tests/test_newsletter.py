"""Newsletter rendering: golden output, placeholders through premailer, layout rules."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import cssutils
import pytest

from publisher.config import Config, parse_config
from publisher.errors import TemplateError
from publisher.mail import newsletter
from publisher.mail.mime import HTML_PLACEHOLDERS, PLACEHOLDERS, TEXT_PLACEHOLDERS
from publisher.models import Article, IssueKind, RenderedIssue

GOLDEN = Path(__file__).parent / "golden" / "newsletter"
REGENERATE = os.environ.get("PUBLISHER_REGENERATE_GOLDEN") == "1"
"""Set PUBLISHER_REGENERATE_GOLDEN=1 to rewrite the golden files from the current output."""

SITE = "https://notes.example.org"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY = """<p>Rest is not a reward for finishing. <a href="https://example.org/review">A 2024 review</a>
found that<sup class="footnote-ref"><a href="#fn1" id="fnref1">[1]</a></sup> short breaks help.</p>
<h2>What the studies say</h2>
<p>Most people sleep <strong>better</strong> after a <em>regular</em> wind-down.</p>
<img src="https://notes.example.org/images/dock.jpg" alt="A dock at dusk" width="1600" height="900">
<img src="https://notes.example.org/images/icon.png" width="120">
<ul><li>Keep the same wake time.</li><li>See <a href="https://example.org/a?x=1&amp;y=2">the guide</a>.</li></ul>
<h2>References</h2>
<ol><li>Ortiz S. Rest and repair. <em>J Sleep Res</em>. 2024;3:1-9.
<a href="https://doi.org/10.1000/rest">https://doi.org/10.1000/rest</a></li>
<li>Reyes D. Small steps. 2023.</li></ol>
<section class="footnotes"><ol class="footnotes-list"><li id="fn1"><p>Across 12 trials.
<a href="#fnref1" class="footnote-backref">↩︎</a></p></li></ol></section>
"""


def make_config(root: Path = Path("/nonexistent"), **overrides: str) -> Config:
    sections: dict[str, dict[str, str]] = {
        "publication": {
            "title": '"Harbor Notes"',
            "url": f'"{SITE}/"',
            "author": '"Dana Reyes, LCSW"',
            "timezone": '"America/New_York"',
            "postal_address": '"Harbor Counseling, 12 Wharf Street, Portland, ME 04101, USA"',
        },
        "newsletter": {
            "from": '"Dana Reyes <notes@example.org>"',
            "reply_to": '"Dana Reyes <dana@example.org>"',
        },
    }
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        sections.setdefault(section, {})[name] = value
    text = "\n".join(
        f"[{section}]\n" + "\n".join(f"{k} = {v}" for k, v in values.items())
        for section, values in sections.items()
    )
    return parse_config(text, root=root)


def make_article(slug: str = "rest-and-repair", **fields: object) -> Article:
    date = datetime(2026, 2, 10, 14, 30, tzinfo=UTC)
    values: dict[str, object] = {
        "slug": slug,
        "title": "Rest and repair: what a pause does",
        "date": date,
        "html": BODY,
        "id": f"tag:notes.example.org,{date:%Y-%m-%d}:/{slug}",
        "url": f"{SITE}/{slug}/",
        "author": "Dana Reyes, LCSW",
        "summary": "Why short breaks help, and how to take them.",
        "updated": datetime(2026, 2, 14, 9, 0, tzinfo=UTC),
        "tags": ("sleep",),
        "image": "images/dock.jpg",
        "image_alt": "A dock at dusk",
    }
    values.update(fields)
    return Article(**values)  # type: ignore[arg-type]


def render(config: Config | None = None, article: Article | None = None) -> RenderedIssue:
    config = config or make_config()
    issue = newsletter.issue_for_article(config, article or make_article())
    return newsletter.render_issue(config, issue, NOW)


def check_golden(name: str, data: str) -> None:
    path = GOLDEN / name
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert data == expected, f"{name} differs; PUBLISHER_REGENERATE_GOLDEN=1 rewrites it"


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the text of every <style> element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def elements(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


def test_golden_issue_html() -> None:
    """The article issue's HTML matches its reviewed golden file."""
    check_golden("issue.html", render().html)


def test_golden_issue_text() -> None:
    """The article issue's plain text matches its reviewed golden file."""
    check_golden("issue.txt", render().text)


def test_golden_digest() -> None:
    """A digest of three articles matches its reviewed golden files."""
    config = make_config()
    articles = [
        make_article("first", title="First note", summary="One."),
        make_article("second", title="Second note", summary="Two.", image=None),
        make_article("third", title="Third note", summary=""),
    ]
    rendered = newsletter.render_issue(config, newsletter.issue_for_digest(config, articles, NOW), NOW)
    check_golden("digest.html", rendered.html)
    check_golden("digest.txt", rendered.text)


def test_placeholders_survive_premailer() -> None:
    """premailer and lxml leave the unsubscribe placeholder in the href exactly as written."""
    html = render().html
    links = [attrs.get("href") for tag, attrs in elements(html).tags if tag == "a"]
    assert HTML_PLACEHOLDERS.unsubscribe_url in links
    assert HTML_PLACEHOLDERS.email in html


def test_placeholders_survive_premailer_with_link_rewriting_input() -> None:
    """A placeholder survives inlining even beside relative links and styled anchors."""
    token = HTML_PLACEHOLDERS.unsubscribe_url
    source = f'<html><head></head><body><p><a href="{token}">x</a><a href="/rel">y</a></p></body></html>'
    inlined = newsletter.inline_css(source, "a { color: red; } p { margin: 0; }")
    assert f'href="{token}"' in inlined
    assert 'href="/rel"' in inlined


def test_text_part_carries_text_placeholders_only() -> None:
    """The text part has its own tokens, so providers can give it unescaped values."""
    rendered = render()
    assert TEXT_PLACEHOLDERS.unsubscribe_url in rendered.text
    assert not any(token in rendered.text for token in HTML_PLACEHOLDERS.as_dict().values())
    assert not any(token in rendered.html for token in TEXT_PLACEHOLDERS.as_dict().values())


def test_only_media_rules_stay_in_style_blocks() -> None:
    """Every rule is inlined; a <style> block holds @media rules and nothing else."""
    parsed = elements(render().html)
    assert parsed.styles, "the @media rules for small screens must be kept"
    for css in parsed.styles:
        sheet = cssutils.parseString(css, validate=False)
        kinds = {rule.type for rule in sheet if rule.type != rule.COMMENT}
        assert kinds == {cssutils.css.CSSRule.MEDIA_RULE}, css


def test_media_rules_keep_important() -> None:
    """Small-screen rules carry !important, or the inlined styles would beat them."""
    css = "".join(elements(render().html).styles)
    assert "max-width: 620px" in css
    assert "width: 100% !important" in css


def test_no_script_and_no_external_css() -> None:
    """The email has no script and no stylesheet link: clients strip both."""
    tags = [tag for tag, _ in elements(render().html).tags]
    assert "script" not in tags
    assert "link" not in tags


def test_layout_is_a_600px_table() -> None:
    """The column is a 600 px presentation table, which Outlook honours."""
    tags = elements(render().html).tags
    containers = [a for t, a in tags if t == "table" and "container" in (a.get("class") or "")]
    assert containers and containers[0].get("width") == "600"
    assert "width:600px" in (containers[0].get("style") or "")


def test_images_fit_the_column_with_alt() -> None:
    """Every image has a width of at most 552 px, an alt attribute and no fixed height."""
    images = [attrs for tag, attrs in elements(render().html).tags if tag == "img"]
    assert len(images) == 3
    for attrs in images:
        assert "alt" in attrs
        assert "height" not in attrs
        assert 0 < int(attrs["width"] or "0") <= newsletter.CONTENT_WIDTH
        assert "max-width:100%" in (attrs.get("style") or "")
    assert [a["width"] for a in images] == ["552", "552", "120"]


def test_header_preheader_and_view_in_browser() -> None:
    """The publication name, a hidden preheader and the archive link are all there."""
    html = render().html
    assert "Harbor Notes</a>" in html
    assert re.search(r'class="preheader" style="display:none[^"]*">Why short breaks help', html)
    assert f'href="{SITE}/rest-and-repair/"' in html
    assert "View this email in your browser" in html


def test_footer_has_address_reason_and_unsubscribe() -> None:
    """The footer shows the postal address, why the reader gets this, and unsubscribe."""
    html = render().html
    footer = html[html.index('class="footer"'):]
    assert "Harbor Counseling, 12 Wharf Street, Portland, ME 04101, USA" in footer
    assert "You are receiving this because you subscribed to Harbor Notes." in footer
    assert HTML_PLACEHOLDERS.unsubscribe_url in footer


def test_footnote_backrefs_are_dropped() -> None:
    """Footnote back-arrows lead nowhere in a mail client and are left out."""
    rendered = render()
    assert "↩" not in rendered.html
    assert "↩" not in rendered.text


def test_text_part_keeps_links() -> None:
    """Links in the plain text read as "text (url)"; bare URLs stay bare."""
    text = render().text
    flowing = " ".join(text.split())
    assert "A 2024 review (https://example.org/review)" in flowing
    assert "the guide (https://example.org/a?x=1&y=2)" in flowing
    assert "https://doi.org/10.1000/rest\n" in text
    assert "(https://doi.org/10.1000/rest)" not in text


def test_text_part_is_readable() -> None:
    """The plain text has headings, the list, the view-in-browser link, and no tags."""
    text = render().text
    assert "What the studies say\n--------------------" in text
    assert "- Keep the same wake time." in text
    assert "1. Ortiz S. Rest and repair." in text
    assert f"View in your browser: {SITE}/rest-and-repair/" in text
    assert not re.search(r"</?[a-z][^>]*>", text)
    assert "&amp;" not in text


def test_hostile_title_is_escaped_in_html() -> None:
    """A title with markup is shown as text, never run as markup."""
    rendered = render(article=make_article(title="<script>alert(1)</script> & more"))
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in rendered.html
    assert "<script>alert(1)</script> & more" in rendered.text


def test_clip_warning_past_the_limit() -> None:
    """An issue whose HTML passes newsletter.clip_warning_bytes gets a Gmail clip warning."""
    rendered = render(make_config(**{"newsletter.clip_warning_bytes": "5000"}))
    assert any("Gmail clips" in warning and "rest-and-repair" in warning for warning in rendered.warnings)


def test_no_warning_for_a_normal_issue() -> None:
    """A normal issue with a postal address renders without warnings."""
    assert render().warnings == ()


def test_missing_postal_address_warns() -> None:
    """A publication without a postal address is warned before it sends."""
    rendered = render(make_config(**{"publication.postal_address": '""'}))
    assert any("postal_address" in warning for warning in rendered.warnings)


def test_template_override_by_file_name(tmp_path: Path) -> None:
    """A file named email/issue.html in the publication's templates folder wins."""
    folder = tmp_path / "templates" / "email"
    folder.mkdir(parents=True)
    (folder / "issue.html").write_text(
        "<html><body><p class='x'>Custom {{ article.title }} for {{ recipient.name }}</p>"
        "<a href='{{ unsubscribe_url }}'>Leave</a></body></html>",
        encoding="utf-8",
    )
    rendered = render(make_config(tmp_path))
    assert "Custom Rest and repair: what a pause does for " + HTML_PLACEHOLDERS.name in rendered.html
    assert "View in your browser" in rendered.text  # issue.txt still comes from the defaults


def test_override_without_unsubscribe_link_is_refused(tmp_path: Path) -> None:
    """An override that drops the unsubscribe link fails instead of reaching readers."""
    folder = tmp_path / "templates" / "email"
    folder.mkdir(parents=True)
    (folder / "issue.txt").write_text("{{ article.title }}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"email/issue\.txt has no unsubscribe link"):
        render(make_config(tmp_path))


def test_template_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A broken override is reported with its file and line."""
    folder = tmp_path / "templates" / "email"
    folder.mkdir(parents=True)
    (folder / "issue.html").write_text("<p>\n{% if %}\n</p>", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"issue\.html:2:"):
        render(make_config(tmp_path))


def test_subject_from_config() -> None:
    """newsletter.subject fills in {title} and {publication} and nothing else."""
    config = make_config(**{"newsletter.subject": '"{publication}: {title} {title.__class__}"'})
    issue = newsletter.issue_for_article(config, make_article())
    assert issue.subject == "Harbor Notes: Rest and repair: what a pause does {title.__class__}"


def test_subject_loses_line_breaks() -> None:
    """A title with line breaks becomes a one-line subject."""
    issue = newsletter.issue_for_article(make_config(), make_article(title="One\r\nBcc: x@example.com"))
    assert issue.subject == "One Bcc: x@example.com"


def test_issue_for_article_keys_and_links() -> None:
    """An article issue is keyed by the article id and links to the archive page."""
    article = make_article()
    issue = newsletter.issue_for_article(make_config(), article)
    assert issue.key == article.id
    assert issue.kind is IssueKind.ARTICLE
    assert issue.web_url == f"{SITE}/rest-and-repair/"
    assert issue.preheader == article.summary


def test_digest_lists_every_article() -> None:
    """A digest shows each article's title, summary and link, keyed by the local day."""
    config = make_config()
    articles = [make_article(f"note-{n}", title=f"Note {n}", summary=f"About {n}.") for n in (1, 2, 3)]
    issue = newsletter.issue_for_digest(config, articles, datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    assert issue.key == "digest:2026-03-01"
    rendered = newsletter.render_issue(config, issue, NOW)
    for n in (1, 2, 3):
        assert f'href="{SITE}/note-{n}/"' in rendered.html
        assert f"About {n}." in rendered.html
        assert f"Read it: {SITE}/note-{n}/" in rendered.text


def test_confirmation_mail_links_the_confirm_url() -> None:
    """The opt-in mail carries the confirmation link and no unsubscribe placeholder."""
    url = f"{SITE}/confirm/abc.def"
    rendered = newsletter.render_confirmation(make_config(), url, NOW)
    assert f'href="{url}"' in rendered.html
    assert url in rendered.text
    assert HTML_PLACEHOLDERS.email in rendered.html
    assert HTML_PLACEHOLDERS.unsubscribe_url not in rendered.html
    assert rendered.subject == "Confirm your subscription to Harbor Notes"


def test_placeholders_are_url_and_qp_safe() -> None:
    """Tokens are letters and underscores only: nothing in the pipeline rewrites them."""
    assert all(re.fullmatch(r"[a-z_]+", token) for token in PLACEHOLDERS)


def test_article_without_image_or_update() -> None:
    """An article without image or update renders without a hero or "Updated"."""
    rendered = render(article=replace(make_article(), image=None, updated=None))
    assert "hero" not in rendered.html
    assert "Updated" not in rendered.html


def test_long_list_items_wrap_with_hanging_indent() -> None:
    """Reference entries wrap at 72 columns under their own number."""
    item = "Ortiz S. " + "A very long reference title that keeps going " * 4 + "2024."
    text = newsletter.html_to_text(f"<ol><li>{item}</li></ol>")
    lines = text.splitlines()
    assert len(lines) > 1
    assert all(len(line) <= 72 for line in lines)
    assert lines[0].startswith("1. Ortiz S.")
    assert all(line.startswith("   ") for line in lines[1:])


def test_no_updated_line_for_a_change_on_the_publication_day() -> None:
    """An update later the same day (in the publication's zone) is not shown; a later day is."""
    same_day = make_article(updated=datetime(2026, 2, 10, 22, 0, tzinfo=UTC))  # 17:00 in New York
    assert "Updated" not in render(article=same_day).html
    assert "Updated" not in render(article=same_day).text
    next_day = make_article(updated=datetime(2026, 2, 11, 15, 0, tzinfo=UTC))
    assert "Updated February 11, 2026" in render(article=next_day).html


def test_author_with_an_address_shows_the_name_only() -> None:
    """An author written "Name <email>" appears by name in the byline."""
    html = render(article=make_article(author="Dana Reyes <dana@example.org>")).html
    assert "By Dana Reyes ·" in html
    assert "dana@example.org" not in html


def test_hidden_preheader_sets_no_colour_of_its_own() -> None:
    """Text coloured like its background is what SpamAssassin's HTML_FONT_LOW_CONTRAST scores."""
    html = render().html
    (style,) = re.findall(r'class="preheader" style="([^"]*)"', html)
    assert "display:none" in style
    assert not re.search(r"(^|;)\s*color\s*:", style)


def test_a_caption_sits_just_under_its_picture() -> None:
    """A figure's picture loses the 18 px under a lone picture: only the caption's 6 px part them."""
    body = (
        '<figure><img src="https://notes.example.org/media/a.jpg" alt="A dock"><figcaption>The dock</figcaption>'
        '</figure><p><img src="https://notes.example.org/media/b.jpg" alt="A path"></p>'
    )
    html = render(article=make_article(html=body)).html
    styles = {attrs["alt"]: attrs.get("style") or "" for tag, attrs in elements(html).tags if tag == "img"}
    assert styles["A dock"].endswith("margin:0") and "margin:0 0 18px 0" in styles["A path"], styles
