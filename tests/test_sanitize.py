from __future__ import annotations

import pytest

from publisher.content.sanitize import clean_html, to_uri

BASE = "https://notes.example.org/a-post/"


def clean(html: str) -> str:
    return clean_html(html, base_url=BASE)


def test_script_goes_with_its_content() -> None:
    """A script element and the code inside it are both removed."""
    assert clean("<p>hi<script>alert('x')</script></p>") == "<p>hi</p>"


def test_event_handlers_are_removed() -> None:
    """onerror, onclick and friends never survive."""
    out = clean('<img src="/a.png" alt="A" onerror="alert(1)"><p onclick="x()">t</p>')
    assert "onerror" not in out
    assert "onclick" not in out
    assert "alert" not in out


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "jav&#x09;ascript:alert(1)",
        " javascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
    ],
)
def test_dangerous_link_schemes_are_dropped(href: str) -> None:
    """Script-running URLs lose their href, however they are spelled."""
    out = clean(f'<a href="{href}">click</a>')
    assert "href" not in out
    assert "click" in out


@pytest.mark.parametrize(
    "html",
    [
        '<iframe src="https://evil.example/"></iframe>',
        '<object data="movie.swf">fallback</object>',
        '<embed src="movie.swf">',
        '<form action="https://evil.example/"><input name="pw"><button>Send</button></form>',
        "<style>body { display: none }</style>",
        "<svg><script>alert(1)</script></svg>",
        "<noscript><img src=x></noscript>",
    ],
)
def test_frames_plugins_forms_and_styles_are_removed_whole(html: str) -> None:
    """Embedded documents, widgets and stylesheets leave nothing behind."""
    assert clean(f"<p>before</p>{html}<p>after</p>") == "<p>before</p><p>after</p>"


def test_data_image_source_is_dropped() -> None:
    """data: URLs are not allowed, not even for images."""
    out = clean('<img src="data:image/png;base64,AAAA" alt="dot">')
    assert out == '<img alt="dot">'


def test_relative_links_and_images_become_absolute() -> None:
    """Relative URLs resolve as they would on the article's page."""
    out = clean('<a href="/about/">About</a> <a href="more/">More</a> <img src="../i/x.png" alt="">')
    assert 'href="https://notes.example.org/about/"' in out
    assert 'href="https://notes.example.org/a-post/more/"' in out
    assert 'src="https://notes.example.org/i/x.png"' in out


def test_fragment_links_point_into_the_page() -> None:
    """Footnote links keep working from a feed reader or an email."""
    assert clean('<a href="#fn1">1</a>') == '<a href="https://notes.example.org/a-post/#fn1">1</a>'


def test_protocol_relative_urls_take_the_base_scheme() -> None:
    """//host/path becomes https://host/path."""
    out = clean('<img src="//cdn.example.net/x.png" alt="x">')
    assert 'src="https://cdn.example.net/x.png"' in out


def test_absolute_urls_are_left_alone() -> None:
    """http, https and mailto links stay as written."""
    out = clean('<a href="https://other.example/p?q=1&amp;r=2">x</a><a href="mailto:a@b.example">m</a>')
    assert 'href="https://other.example/p?q=1&amp;r=2"' in out
    assert 'href="mailto:a@b.example"' in out


def test_target_links_get_noopener() -> None:
    """A link that opens a new window cannot reach back into this one."""
    out = clean('<a href="https://x.example/?a=1" title="a>b" target="_blank" rel="opener">x</a>')
    assert out == '<a href="https://x.example/?a=1" title="a&gt;b" target="_blank" rel="noopener">x</a>'


def test_links_without_target_get_no_rel() -> None:
    """Ordinary links are not decorated, and authors' rel values are not trusted."""
    assert clean('<a href="https://x.example/" rel="opener">x</a>') == '<a href="https://x.example/">x</a>'


def test_unknown_target_is_dropped() -> None:
    """Only the standard browsing-context names are allowed."""
    assert "target" not in clean('<a href="https://x.example/" target="evil">x</a>')


def test_images_keep_size_and_alt() -> None:
    """Newsletters need width, height and alt to lay images out."""
    out = clean('<img src="/a.jpg" alt="A harbor" width="600" height="400">')
    assert out == '<img src="https://notes.example.org/a.jpg" alt="A harbor" width="600" height="400">'


def test_bad_image_sizes_are_dropped() -> None:
    """A width that is not a number is removed rather than passed on."""
    out = clean('<img src="/a.jpg" alt="" width="expression(alert(1))">')
    assert "width" not in out


def test_style_attributes_are_removed_except_table_alignment() -> None:
    """Only the text-align that Markdown tables write survives."""
    out = clean(
        '<p style="position:fixed">p</p><table><tr>'
        '<td style="text-align:right; background:url(x)">a</td>'
        '<td style="text-align: center">b</td></tr></table>'
    )
    assert "<p>p</p>" in out
    assert "<td>a</td>" in out
    assert '<td style="text-align:center">b</td>' in out


def test_only_known_classes_survive() -> None:
    """Pasted HTML cannot borrow the page's own classes."""
    out = clean('<code class="language-python btn">x</code><div class="modal">d</div>')
    assert out == '<code class="language-python">x</code><div>d</div>'


def test_comments_are_stripped() -> None:
    """Conditional comments are a classic way to smuggle markup into email."""
    assert clean("<p>a<!--[if mso]><script>x</script><![endif]--></p>") == "<p>a</p>"


def test_text_is_escaped() -> None:
    """Stray angle brackets and ampersands come out as entities."""
    assert clean("<p>a < b & c</p>") == "<p>a &lt; b &amp; c</p>"


def test_urls_with_spaces_and_accents_are_encoded() -> None:
    """Links and images written with spaces or accents come out as valid URIs."""
    out = clean('<img src="my photo.jpg" alt=""> <a href="https://other.example/a b/é">x</a>')
    assert 'src="https://notes.example.org/a-post/my%20photo.jpg"' in out
    assert 'href="https://other.example/a%20b/%C3%A9"' in out


@pytest.mark.parametrize(
    ("url", "uri"),
    [
        ("https://x.example/a?b=1&c=%41#top", "https://x.example/a?b=1&c=%41#top"),
        (" https://x.example/a b ", "https://x.example/a%20b"),
        ("https://x.example/100%", "https://x.example/100%25"),
        ("https://bücher.example/straße", "https://xn--bcher-kva.example/stra%C3%9Fe"),
        ("mailto:a@b.example?subject=Hi there", "mailto:a@b.example?subject=Hi%20there"),
    ],
)
def test_to_uri(url: str, uri: str) -> None:
    """A valid URI comes back as is; spaces, non-ASCII and stray "%" are encoded, hosts IDNA."""
    assert to_uri(url) == uri
