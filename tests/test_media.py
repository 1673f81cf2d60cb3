"""Pictures: checked by content, re-encoded without camera data, stored whole, rendered
with their sizes into pages, feeds and newsletters, and checked before a send."""

from __future__ import annotations

import http.server
import io
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms

from publisher import content
from publisher.config import Config, load_config
from publisher.content import media
from publisher.errors import Conflict, InvalidRequest, NotFound
from publisher.mail import newsletter, preflight
from publisher.services import media as media_service
from publisher.site import build

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CONFIG = """
[publication]
title = "Quiet Harbor"
url = "https://news.example.org/"
author = "Dana Reyes, LCSW"
postal_address = "1 Test Road, Testville"

[newsletter]
from = "Quiet Harbor <letters@example.org>"

[fetch]
allow_private = true
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "content").mkdir()
    return load_config(tmp_path / "config.toml", env={})


# Pictures made for the tests


def jpeg(width: int = 2000, height: int = 1500, *, gps: bool = False, orientation: int = 1, **extra: object) -> bytes:
    image = Image.new("RGB", (width, height), (180, 40, 40))
    image.paste((20, 60, 200), (0, 0, width // 2, height // 3))  # a corner to tell the turn by
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneCam"
    if gps:
        place = exif.get_ifd(ExifTags.IFD.GPSInfo)
        place[ExifTags.GPS.GPSLatitudeRef] = "N"
        place[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 12.0)
        place[ExifTags.GPS.GPSLongitudeRef] = "W"
        place[ExifTags.GPS.GPSLongitude] = (0.0, 7.0, 39.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, **extra)
    return out.getvalue()


def png(width: int, height: int, mode: str = "RGBA", colour: tuple[int, ...] = (0, 128, 0, 120)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), colour).save(out, "PNG")
    return out.getvalue()


def gif(frames: int, size: int = 64) -> bytes:
    shown = [Image.new("RGB", (size, size), ((i * 37) % 256, (i * 11) % 256, 90)) for i in range(frames)]
    out = io.BytesIO()
    shown[0].save(out, "GIF", save_all=True, append_images=shown[1:], duration=50, loop=0)
    return out.getvalue()


def bomb() -> bytes:
    """A tiny PNG that says it is 30,000 x 30,000 pixels (900 megapixels)."""
    out = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(out, "PNG")
    return out.getvalue()


def refusal(data: bytes) -> str:
    with pytest.raises(InvalidRequest) as info:
        media.process_image(data)
    return str(info.value)


def stored(config: Config) -> list[str]:
    folder = config.path_of("build.content") / media.FOLDER
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def read_back(config: Config, name: str) -> Image.Image:
    image = Image.open(config.path_of("build.content") / media.FOLDER / name)
    image.load()
    return image


# Processing


def test_every_stored_width_is_free_of_exif_and_gps(config: Config) -> None:
    """A phone photo with its location: no stored width keeps EXIF, GPS, XMP or the camera."""
    media_service.store_image(config, jpeg(gps=True, xmp=b"<x:xmpmeta>GPSLatitude 51</x:xmpmeta>"))
    names = stored(config)
    assert len(names) == 3
    for name in names:
        image = read_back(config, name)
        exif = image.getexif()
        assert not exif.get_ifd(ExifTags.IFD.GPSInfo) and ExifTags.Base.Make not in exif and len(exif) == 0
        assert "exif" not in image.info and "xmp" not in image.info
        assert b"GPS" not in (config.path_of("build.content") / "media" / name).read_bytes()


def test_the_widths_follow_the_picture_and_never_enlarge_it(config: Config) -> None:
    """A 2000 px photo is kept at 480, 960 and 1600 px; a 300 px one at 300 px only."""
    big = media.process_image(jpeg(2000, 1500))
    assert [name for name, _ in big.files] == [
        f"{big.main.hash}-480x360.jpg", f"{big.main.hash}-960x720.jpg", f"{big.main.hash}-1600x1200.jpg"
    ]
    small = media.process_image(jpeg(300, 200))
    assert [name for name, _ in small.files] == [f"{small.main.hash}-300x200.jpg"]


def test_orientation_is_applied_before_anything_else(config: Config) -> None:
    """A photo taken sideways (EXIF orientation 6) is stored upright, its sizes turned."""
    done = media.process_image(jpeg(1200, 800, orientation=6))
    assert (done.main.width, done.main.height) == (800, 1200)
    image = Image.open(io.BytesIO(done.files[-1][1]))
    assert image.size == (800, 1200)
    assert image.getpixel((790, 10))[2] > 150  # the blue corner turned to the top right


def test_the_colour_profile_is_kept(config: Config) -> None:
    """An sRGB ICC profile travels with every width."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    done = media.process_image(jpeg(1000, 500, icc_profile=profile))
    assert all(Image.open(io.BytesIO(data)).info.get("icc_profile") == profile for _, data in done.files)


def test_transparency_stays_png_and_webp_becomes_jpeg() -> None:
    """A PNG with see-through parts stays PNG; an opaque WebP becomes JPEG for mail clients."""
    assert media.process_image(png(200, 100)).main.ext == "png"
    out = io.BytesIO()
    Image.new("RGB", (200, 100), (9, 9, 9)).save(out, "WEBP")
    assert media.process_image(out.getvalue()).main.ext == "jpg"
    assert media.process_image(png(200, 100, "RGB", (1, 2, 3))).main.ext == "jpg"


def test_the_same_picture_twice_is_stored_once(config: Config) -> None:
    """Names come from the content: uploading again changes nothing."""
    first = media_service.store_image(config, jpeg(700, 500))
    again = media_service.store_image(config, jpeg(700, 500))
    assert first == again and len(stored(config)) == 2


def test_the_answer_gives_the_markdown_and_the_size(config: Config) -> None:
    """The stored picture's main name, its /media/ path, its Markdown and its size."""
    done = media_service.store_image(config, jpeg(2000, 1000))
    assert done.url == f"/media/{done.name}" and done.markdown == f"![](/media/{done.name})"
    assert (done.width, done.height) == (1600, 800) and done.name.endswith("-1600x800.jpg")


# Refusals: each said, nothing stored


def test_a_file_over_20_mb_is_refused() -> None:
    """21 MB is refused before Pillow opens anything."""
    message = refusal(b"\xff\xd8" + os.urandom(21 * 1024 * 1024 - 2))
    assert "21.0 MB" in message and "20 MB" in message


def test_a_decompression_bomb_is_refused(config: Config) -> None:
    """A tiny PNG claiming 900 megapixels is refused without being decoded."""
    data = bomb()
    assert len(data) < 200_000
    with pytest.raises(InvalidRequest, match=r"too large|megapixels"):
        media_service.store_image(config, data)
    assert stored(config) == []


def test_a_text_file_named_jpg_is_refused(config: Config) -> None:
    """What counts is the content; the name is never even seen."""
    with pytest.raises(InvalidRequest, match="not a picture publisher can read"):
        media_service.store_image(config, b"Dear diary,\nthis is not a photo.\n")
    assert stored(config) == []


def test_svg_is_refused_and_says_why() -> None:
    """An SVG with a script, and any SVG at all, is refused, naming PNG as the way out."""
    hostile = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert "SVG" in refusal(hostile) and "PNG" in refusal(hostile)
    assert "SVG" in refusal(b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>')


def test_an_animation_over_the_limit_is_refused() -> None:
    """101 frames is past MAX_FRAMES: refused with the frame count and the limit."""
    message = refusal(gif(media.MAX_FRAMES + 1))
    assert f"{media.MAX_FRAMES + 1} frames" in message and f"{media.MAX_FRAMES} frames" in message


def test_a_short_animation_is_kept_as_one_gif() -> None:
    """Within the limits an animation stays animated, as one GIF at its own width."""
    done = media.process_image(gif(5))
    assert [name for name, _ in done.files] == [f"{done.main.hash}-64x64.gif"]
    assert Image.open(io.BytesIO(done.files[0][1])).n_frames == 5


def test_a_truncated_jpeg_is_refused(config: Config) -> None:
    """Half a JPEG is damaged: refused, nothing stored."""
    data = jpeg(800, 600)
    with pytest.raises(InvalidRequest, match="damaged or incomplete"):
        media_service.store_image(config, data[: len(data) // 2])
    assert stored(config) == []


def test_nothing_half_written_stays_when_a_write_fails(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk error on the last file removes every temporary file and shows no picture."""
    real = Path.replace
    calls: list[Path] = []

    def failing(self: Path, target: str | os.PathLike[str]) -> Path:
        calls.append(self)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self, target)

    monkeypatch.setattr(Path, "replace", failing)
    with pytest.raises(Exception, match="No space left"):
        media_service.store_image(config, jpeg())
    assert not [n for n in stored(config) if n.startswith(".")]
    assert media_service.list_media(config).total == 0


# The folder: listing, who uses what, deleting, reading


ARTICLE = """---
title: {title}
date: 2026-11-02 09:00
{front}---

{body}
"""


def write_article(config: Config, slug: str, *, body: str = "Text.", front: str = "") -> None:
    text = ARTICLE.format(title=slug.replace("-", " ").title(), front=front, body=body)
    (config.path_of("build.content") / f"2026-11-02-{slug}.md").write_text(text, encoding="utf-8")


def test_delete_is_refused_while_an_article_uses_the_picture(config: Config) -> None:
    """The articles using it are named, and every width stays."""
    done = media_service.store_image(config, jpeg())
    write_article(config, "harbor-walk", body=f"![The harbour at dusk]({done.url})")
    write_article(config, "lead-only", front=f"image: media/{done.name}\nimage_alt: A boat\n")
    with pytest.raises(Conflict) as info:
        media_service.delete_image(config, done.name)
    assert "Harbor Walk" in str(info.value) and "Lead Only" in str(info.value)
    assert len(stored(config)) == 3


def test_delete_removes_every_width(config: Config) -> None:
    """An unused picture goes with all its widths; asked again, it is not found."""
    done = media_service.store_image(config, jpeg())
    other = media_service.store_image(config, jpeg(400, 300))
    assert len(media_service.delete_image(config, done.name)) == 3
    assert stored(config) == [other.name]
    with pytest.raises(NotFound):
        media_service.delete_image(config, done.name)


def test_the_list_pages_newest_first_with_users(config: Config) -> None:
    """Pictures are listed by their main file, newest first, with the articles using them."""
    names = []
    for i in range(5):
        names.append(media_service.store_image(config, jpeg(500 + i, 300)).name)
        os.utime(config.path_of("build.content") / "media" / names[-1], (1_700_000_000 + i, 1_700_000_000 + i))
    write_article(config, "uses-one", body=f"![A]({names[1]})".replace("(", "(/media/"))
    first = media_service.list_media(config, page=1, per_page=2)
    assert (first.total, first.pages) == (5, 3)
    assert [i.image.name for i in first.items] == [names[4], names[3]]
    last = media_service.list_media(config, page=2, per_page=2)
    assert [ref.slug for ref in last.items[1].used_by] == ["uses-one"]


def test_reading_a_file_takes_only_a_picture_name(config: Config, tmp_path: Path) -> None:
    """Paths and links are refused: only a picture's own name, as a plain file, is read."""
    done = media_service.store_image(config, jpeg(600, 400))
    data, kind = media_service.read_media_file(config, done.name)
    assert kind == "image/jpeg" and data.startswith(b"\xff\xd8")
    (tmp_path / "secret.txt").write_text("private", encoding="utf-8")
    link = config.path_of("build.content") / "media" / "0123456789abcdef-10x10.jpg"
    link.symlink_to(tmp_path / "secret.txt")
    for name in ("../../config.toml", "..%2f..%2fconfig.toml", link.name, "0123456789abcdef-20x20.jpg"):
        with pytest.raises(NotFound):
            media_service.read_media_file(config, name)


# Rendering


def test_an_article_picture_gets_its_sizes_and_widths(config: Config) -> None:
    """`![...](/media/x)` and `media/x` become the site's address, with width, height and srcset."""
    done = media_service.store_image(config, jpeg(2000, 1500))
    base = f"{done.name.split('-')[0]}"
    for written in (done.url, f"media/{done.name}"):
        article = content.parse_article(
            ARTICLE.format(title="Pictures", front="", body=f"![A calm harbour]({written})"),
            source="content/p.md", config=config,
        )
        assert f'src="https://news.example.org/media/{base}-960x720.jpg"' in article.html
        assert 'width="1600" height="1200"' in article.html and 'alt="A calm harbour"' in article.html
        assert f"media/{base}-480x360.jpg 480w" in article.html and f"{base}-1600x1200.jpg 1600w" in article.html


def test_other_images_are_left_as_written(config: Config) -> None:
    """A picture from another site, or one not named like a stored one, is untouched."""
    article = content.parse_article(
        ARTICLE.format(title="P", front="", body="![x](https://cdn.example.com/media/0123456789abcdef-1600x900.jpg)"
                       " ![y](/media/holiday.jpg)"),
        source="content/p.md", config=config,
    )
    assert "srcset" not in article.html and "width=" not in article.html


def test_the_newsletter_carries_a_plain_absolute_src(config: Config) -> None:
    """Mail gets the 960 px file by its absolute address, sized to the column, no srcset."""
    done = media_service.store_image(config, jpeg(2000, 1500))
    article = content.parse_article(
        ARTICLE.format(title="Mail", front="", body=f"Text.\n\n![A harbour]({done.url})"), source="content/m.md",
        config=config,
    )
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), NOW)
    assert f'src="https://news.example.org/media/{done.name.replace("1600x1200", "960x720")}"' in rendered.html
    assert "srcset" not in rendered.html and 'width="600"' in rendered.html


def test_a_media_lead_image_reaches_feeds_page_and_email(config: Config) -> None:
    """`image: media/<name>` is the site's picture, at 960 px, in og:image, the feeds and the email."""
    done = media_service.store_image(config, jpeg(2000, 1500))
    write_article(config, "with-lead", front=f"image: media/{done.name}\nimage_alt: A lighthouse\n")
    expected = f"https://news.example.org/media/{done.name.replace('1600x1200', '960x720')}"
    articles = content.load_articles(config)
    assert articles[0].image == expected
    site = build.render_site(config, articles, NOW)
    assert f'<meta property="og:image" content="{expected}">' in site.files["with-lead/index.html"].decode()
    assert json.loads(site.files["feeds/feed.json"])["items"][0]["image"] == expected
    assert expected.encode() in site.files["feeds/rss.xml"]
    assert expected.removeprefix("https://news.example.org/") in site.files
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, articles[0]), NOW)
    assert f'src="{expected}"' in rendered.html


# Checks before a send


def check_of(config: Config, *, external: bool = False) -> preflight.Check:
    article = content.load_articles(config)[0]
    found, _ = preflight.run_checks(config, article, subject="S", html=article.html, text="x", external=external)
    return {c.name: c for c in found}["Pictures"]


def test_preflight_names_a_picture_missing_from_the_media_folder(config: Config) -> None:
    """A picture deleted by hand (or never uploaded) is named, with where it should be."""
    done = media_service.store_image(config, jpeg(600, 400))
    write_article(config, "gone", body=f"![A boat]({done.url})")
    assert check_of(config).ok is True
    (config.path_of("build.content") / "media" / done.name).unlink()
    found = check_of(config)
    assert found.ok is False and done.name in found.detail and "content/media/" in found.detail
    assert found.stops_send


def test_preflight_names_pictures_without_alt_text(config: Config) -> None:
    """`![](...)` in the body and a lead image without image_alt each fail, named."""
    done = media_service.store_image(config, jpeg(600, 400))
    write_article(config, "no-alt", body=f"![]({done.url})", front=f"image: {done.url}\n")
    found = check_of(config)
    assert found.ok is False and found.detail.count(done.name) == 1 and "image_alt" in found.detail
    assert found.detail.startswith("The lead image has no alt text"), found.detail


def test_preflight_names_the_picture_written_not_its_resized_copy(config: Config) -> None:
    """A large upload is sent at 960 px; the check names the file the Media page lists."""
    done = media_service.store_image(config, jpeg(2000, 1500))
    write_article(config, "big", body=f"![]({done.url})")
    found = check_of(config)
    assert f"picture /media/{done.name} has no alt text" in found.detail, found.detail
    assert "-960x" not in found.detail


def test_preflight_names_a_missing_picture_once_for_all_its_sizes(config: Config) -> None:
    """Every width of a picture gone is one problem, named by the picture as written."""
    done = media_service.store_image(config, jpeg(2000, 1500))
    write_article(config, "gone-big", body=f"![A boat]({done.url})")
    for file in (config.path_of("build.content") / "media").iterdir():
        file.unlink()
    found = check_of(config)
    assert found.detail.count("is not in the content folder") == 1, found.detail
    assert f"picture /media/{done.name} is not" in found.detail and found.stops_send


def test_preflight_checks_pictures_once(config: Config) -> None:
    """Alt text is part of the one Pictures check, not a second check beside it."""
    done = media_service.store_image(config, jpeg(600, 400))
    write_article(config, "once", body=f"![]({done.url})")
    article = content.load_articles(config)[0]
    found, _ = preflight.run_checks(config, article, subject="S", html=article.html, text="x")
    names = [c.name for c in found]
    assert names.count("Pictures") == 1 and not any("alt" in name.lower() for name in names), names


def test_preflight_names_a_template_picture_without_alt(config: Config) -> None:
    """A logo a template override adds without alt is named in the Pictures check and holds the send."""
    write_article(config, "logo")
    article = content.load_articles(config)[0]
    html = article.html + '<img src="https://news.example.org/logo.png">'
    found, _ = preflight.run_checks(config, article, subject="S", html=html, text="x")
    pictures = {c.name: c for c in found}["Pictures"]
    assert "logo.png has no alt text" in pictures.detail and pictures.stops_send


@pytest.fixture
def image_site() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/fine.jpg" else 404)
            self.send_header("content-type", "image/jpeg")
            self.end_headers()
            self.wfile.write(b"\xff\xd8 not really")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_preflight_fetches_other_sites_pictures_only_when_asked(config: Config, image_site: str) -> None:
    """A dead picture on another site is named by the deep check, and not fetched otherwise."""
    write_article(config, "remote", body=f"![Fine]({image_site}/fine.jpg) ![Gone]({image_site}/gone.jpg)")
    assert check_of(config).ok is True and "not fetched" in check_of(config).detail
    found = check_of(config, external=True)
    assert found.ok is False and "/gone.jpg" in found.detail and "/fine.jpg" not in found.detail
    assert not found.stops_send  # another site down a moment holds no send


def test_a_cmyk_print_file_becomes_rgb() -> None:
    """A CMYK JPEG (from a print workflow) is stored as an RGB JPEG that browsers show."""
    out = io.BytesIO()
    Image.new("CMYK", (300, 200), (0, 255, 255, 0)).save(out, "JPEG")
    image = Image.open(io.BytesIO(media.process_image(out.getvalue()).files[-1][1]))
    assert image.mode == "RGB" and image.getpixel((150, 100))[0] > 200 and "icc_profile" not in image.info


def test_a_large_photo_taken_sideways_keeps_its_full_widest_size() -> None:
    """Decoding a large JPEG at a fraction of its size still gives the widest file in full."""
    done = media.process_image(jpeg(4000, 3000, orientation=6))
    assert (done.main.width, done.main.height) == (1600, 2133)
    assert media.process_image(jpeg(4000, 3000)).main.name.endswith("-1600x1200.jpg")


def test_an_iphone_heic_photo_is_refused_with_the_way_out() -> None:
    """HEIC is named, with how to get a JPEG instead."""
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    message = refusal(heic)
    assert "HEIC" in message and "JPEG" in message and "Most Compatible" in message


def test_an_animated_webp_becomes_an_animated_gif() -> None:
    """An animation in WebP (which mail clients do not show) is kept as a GIF, every frame."""
    frames = [Image.new("RGB", (80, 60), (i * 60, 20, 90)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=80, loop=0)
    done = media.process_image(out.getvalue())
    assert done.main.name.endswith("-80x60.gif") and Image.open(io.BytesIO(done.files[0][1])).n_frames == 3
