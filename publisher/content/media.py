"""Pictures for articles: an upload's bytes into web- and mail-ready files, and their names.

`process_image` is pure: bytes in, the files to store out (name -> bytes), or an
InvalidRequest that says why the picture is refused. It trusts the content, never a file
name: Pillow's own detection, limited to JPEG, PNG, GIF and WebP, decides what a file is.

Refused, each with its own message: more than `MAX_BYTES`; anything Pillow cannot read
as one of those formats (a text file named .jpg); SVG of any kind (it can carry
scripts, and mail clients do not show it); HEIC and AVIF (said so, with how to export a
JPEG: an iPhone's photos come in HEIC); more than `MAX_PIXELS` pixels, or anything
Pillow calls a decompression bomb; an animation of more than `MAX_FRAMES` frames or
`MAX_ANIMATION_PIXELS` pixels over all its frames; a truncated or corrupt file.

What is stored. The picture is turned upright first (its EXIF orientation applied),
then re-encoded at each of `WIDTHS` below its own width and at its own width up to the
largest (never enlarged). Re-encoding keeps the pixels and the colour profile (ICC; a
CMYK picture is converted to sRGB through its profile, since browsers expect RGB) and
nothing else: no EXIF, no GPS position, no XMP, no comments. A JPEG stays JPEG; a
picture with transparency becomes PNG; anything else becomes JPEG (what every mail
client shows). An animation is stored once, at its own width up to the largest, as a
GIF: every mail client shows one (some only its first frame).

Rendering (`fit_images`, pure, run once per article by `publisher.content`): an image in an
article that refers to a stored picture, as `/media/<name>` or `media/<name>`, gets the
site's absolute address, its `width` and `height`, a `srcset` of every stored width, and a
plain `src` at `EMAIL_WIDTH`, which is what a newsletter keeps (it drops srcset and fits
the width to its column). A lead image (`image:`) written either way is resolved against
the site, not the article's page, at EMAIL_WIDTH too (`site_url_of`). A draft's preview
in the desk takes every width from the desk instead (`web.desk.previews.desk_images`).

Names carry everything a page needs, so rendering stays pure and needs no index:
`<hash>-<width>x<height>.<ext>`, where the hash (`HASH_LENGTH` hex digits of the
upload's SHA-256) is shared by every width of one picture. The widest file is the
picture's main name, the one Markdown refers to (`/media/<main>`); the other widths
follow from it by `variants`. The same upload twice gives the same names.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from publisher.errors import InvalidRequest
from publisher.numbers import plain_int

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "FOLDER",
    "HASH_LENGTH",
    "MAX_ANIMATION_PIXELS",
    "MAX_BYTES",
    "MAX_FRAMES",
    "MAX_PIXELS",
    "NAME_RE",
    "WIDTHS",
    "MediaName",
    "Processed",
    "email_variant",
    "fit_images",
    "media_name_of",
    "parse_name",
    "process_image",
    "site_url_of",
    "variants",
]

FOLDER = "media"
"""The folder under `build.content` the pictures live in; the build copies it to the site."""
MAX_BYTES = 20 * 1024 * 1024
"""Largest upload: more than any phone photo, less than a folder of them."""
MAX_PIXELS = 50_000_000
"""Largest picture (a 50-megapixel camera's); beyond it decoding alone costs too much memory."""
MAX_FRAMES = 100
MAX_ANIMATION_PIXELS = 25_000_000
"""Pixels over all an animation's frames: 100 frames of 500 x 500, or 10 of 1600 x 1562."""
WIDTHS = (480, 960, 1600)
"""Widths stored (those below the picture's own width), the largest also the widest kept."""
EMAIL_WIDTH = 960
"""The width an email and a page's plain `src` use: sharp in a 600 px column on a phone."""
HASH_LENGTH = 16
JPEG_QUALITY = 85
FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
"""What Pillow may read an upload as: no other decoder ever sees one."""

NAME_RE = re.compile(
    r"(?P<hash>[0-9a-f]{16})-(?P<width>[1-9][0-9]{0,4})x(?P<height>[1-9][0-9]{0,4})\.(?P<ext>jpg|png|gif)"
)
_SVG_RE = re.compile(rb"<(?:svg|!DOCTYPE\s+svg)\b", re.IGNORECASE)
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif"}
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})


@dataclass(frozen=True, slots=True)
class MediaName:
    """A stored file's name, read back: which picture, at what size."""

    name: str
    hash: str
    width: int
    height: int
    ext: str


def parse_name(name: str) -> MediaName | None:
    """The parts of a media file name, or None when `name` is not one (so never a path)."""
    found = NAME_RE.fullmatch(name)
    if found is None:
        return None
    return MediaName(name, found["hash"], int(found["width"]), int(found["height"]), found["ext"])


def _scaled(width: int, height: int, to: int) -> int:
    return max(1, round(height * to / width))


def variants(main: MediaName) -> list[MediaName]:
    """Every stored width of the picture whose main (widest) file is `main`, narrowest first.

    An animation (a GIF) has one file only.
    """
    if main.ext == "gif":
        return [main]
    found = [
        MediaName(f"{main.hash}-{w}x{_scaled(main.width, main.height, w)}.{main.ext}", main.hash, w,
                  _scaled(main.width, main.height, w), main.ext)
        for w in WIDTHS
        if w < main.width
    ]
    return [*found, main]


def email_variant(main: MediaName) -> MediaName:
    """The file a mail (and a browser without srcset) gets: the widest up to EMAIL_WIDTH."""
    fitting = [v for v in variants(main) if v.width <= EMAIL_WIDTH]
    return fitting[-1] if fitting else variants(main)[0]


@dataclass(frozen=True, slots=True)
class Processed:
    """What to store for one upload: files by name, the main one last."""

    files: tuple[tuple[str, bytes], ...]
    main: MediaName


def _refuse(message: str) -> InvalidRequest:
    return InvalidRequest(message)


def _looks_like_svg(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"<?xml", b"<svg", b"<!--", b"<!DOCTYPE")) and bool(_SVG_RE.search(data[:65536]))


def process_image(data: bytes) -> Processed:
    """The files to store for the picture `data`; InvalidRequest, saying why, if it is refused."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > MAX_BYTES:
        raise _refuse(f"the file is {len(data) / 1048576:.1f} MB; a picture may be {MAX_BYTES // 1048576} MB at most")
    if not data:
        raise _refuse("the file is empty; choose a picture (JPEG, PNG, GIF or WebP)")
    if _looks_like_svg(data):
        raise _refuse(
            "SVG drawings are not accepted: they can carry scripts, and mail clients do not show them; "
            "export it as PNG and upload that"
        )
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        raise _refuse(
            "HEIC and AVIF photos (HEIC is an iPhone's own format) are not accepted: mail clients cannot "
            "show them. Export the photo as JPEG (or set the iPhone's Camera > Formats to Most Compatible) "
            "and upload that"
        )
    digest = hashlib.sha256(data).hexdigest()[:HASH_LENGTH]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            _check_size(image.width, image.height)
            frames = int(getattr(image, "n_frames", 1))
            if frames > 1:
                return _animation(image, frames, digest)
            _draft(image)
            image.load()
            upright = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _refuse(
            f"the picture is too large to open safely ({exc}); resize it below {MAX_PIXELS // 1_000_000} "
            "megapixels and upload it again"
        ) from exc
    except UnidentifiedImageError as exc:
        raise _refuse(
            "the file is not a picture publisher can read: upload a JPEG, PNG, GIF or WebP "
            "(a file's name does not make it one)"
        ) from exc
    except InvalidRequest:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _refuse(f"the picture is damaged or incomplete ({exc}); export it again and upload the new file") from exc
    return _still(upright, str(image.format), image.info.get("icc_profile"), digest)


def _draft(image: Image.Image) -> None:
    """Let a large JPEG decode straight at a fraction of its size (libjpeg's DCT scaling),
    still at least as wide as the widest file kept: four times less work for a phone photo."""
    if image.format != "JPEG":
        return
    turned = image.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientation: a quarter turn
    upright_width = image.height if turned else image.width
    if upright_width <= WIDTHS[-1]:
        return
    scale = WIDTHS[-1] / upright_width
    image.draft(image.mode, (math.ceil(image.width * scale), math.ceil(image.height * scale)))


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise _refuse(
            f"the picture is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"resize it below {MAX_PIXELS // 1_000_000} megapixels and upload it again"
        )


def _has_alpha(image: Image.Image) -> bool:
    if image.mode in ("RGBA", "LA", "PA"):
        return image.getextrema()[-1][0] < 255  # type: ignore[index]
    return image.mode in ("P", "L", "RGB") and "transparency" in image.info


def _still(image: Image.Image, source_format: str, icc: bytes | None, digest: str) -> Processed:
    from PIL import Image

    image, icc = _web_colours(image, icc)
    transparent = source_format != "JPEG" and _has_alpha(image)
    if transparent:
        fmt, image = "PNG", image.convert("RGBA")
    else:
        fmt, image = "JPEG", image.convert("L" if image.mode in ("L", "1", "I;16") else "RGB")
    if icc and _space(icc) != ("GRAY" if image.mode == "L" else "RGB"):
        icc = None  # a profile for other colours than the pixels now have would mislead browsers
    width = min(image.width, WIDTHS[-1])
    height = _scaled(image.width, image.height, width)
    ext = _EXTENSIONS[fmt]
    main = MediaName(f"{digest}-{width}x{height}.{ext}", digest, width, height, ext)
    files: list[tuple[str, bytes]] = []
    source = image
    for variant in reversed(variants(main)):  # each width from the next wider: less work, same look
        size = (variant.width, variant.height)
        source = source if size == source.size else source.resize(size, Image.Resampling.LANCZOS)
        files.append((variant.name, _encode(source.copy(), fmt, icc)))
    return Processed(tuple(reversed(files)), main)


def _space(icc: bytes) -> str:
    """The colour space an ICC profile describes ("RGB", "CMYK", "GRAY"), "" if unreadable."""
    from PIL import ImageCms

    try:
        return str(ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space).strip()
    except (OSError, ValueError, ImageCms.PyCMSError):
        return ""


def _web_colours(image: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """A CMYK picture (print files) in sRGB, through its own profile where it has one."""
    from PIL import ImageCms

    if image.mode != "CMYK":
        return image, icc
    if icc and _space(icc) == "CMYK":
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if converted is not None:
                return converted, None
        except (OSError, ValueError, ImageCms.PyCMSError):
            pass
    return image.convert("RGB"), None


def _encode(image: Image.Image, fmt: str, icc: bytes | None) -> bytes:
    """The pixels alone, re-encoded: a fresh `info`, so no EXIF, XMP or comment follows."""
    image.info = {}
    out = io.BytesIO()
    options: dict[str, object] = {"optimize": True}
    if icc:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        options.update(quality=JPEG_QUALITY, progressive=True)
    image.save(out, fmt, **options)
    return out.getvalue()


def _frames(image: Image.Image) -> Iterator[tuple[Image.Image, int]]:
    from PIL import ImageSequence

    for frame in ImageSequence.Iterator(image):
        yield frame.convert("RGBA"), int(frame.info.get("duration", 100))


def _animation(image: Image.Image, frames: int, digest: str) -> Processed:
    """An animation at its own width (up to the largest), as a GIF, metadata dropped."""
    from PIL import Image

    total = image.width * image.height * frames
    if frames > MAX_FRAMES or total > MAX_ANIMATION_PIXELS:
        raise _refuse(
            f"the animation has {frames} frames of {image.width} x {image.height} pixels; an animation may "
            f"have {MAX_FRAMES} frames and {MAX_ANIMATION_PIXELS // 1_000_000} million pixels over all its frames "
            "at most: shorten it or make it smaller (or upload a still picture)"
        )
    width = min(image.width, WIDTHS[-1])
    height = _scaled(image.width, image.height, width)
    loop = int(image.info.get("loop", 0))
    shown: list[Image.Image] = []
    durations: list[int] = []
    for frame, duration in _frames(image):
        if frame.size != (width, height):
            frame = frame.resize((width, height), Image.Resampling.LANCZOS)
        shown.append(frame)
        durations.append(duration)
    out = io.BytesIO()
    first = shown[0]
    first.info = {}
    first.save(out, "GIF", save_all=True, append_images=shown[1:], duration=durations, loop=loop,
               disposal=2, optimize=False)
    name = f"{digest}-{width}x{height}.gif"
    main = MediaName(name, digest, width, height, "gif")
    return Processed(((name, out.getvalue()),), main)


# nh3 writes every attribute as name="value" with `"` escaped, so this reads its <img> tags exactly.
_IMG_RE = re.compile(r'<img((?:\s+[^\s=>/]+(?:="[^"]*")?)*)(\s*/?)>')
_ATTR_RE = re.compile(r'\s+([^\s=>/]+)(?:="([^"]*)")?')
SIZES = "(max-width: 42rem) 100vw, 42rem"
"""The article column of the site's pages (templates/web/site.css) for the browser's pick."""


def site_url_of(value: str, site: str) -> str | None:
    """The absolute address of a picture written as `/media/<name>` or `media/<name>` (as
    the desk gives them, for the site's root), or None for anything else.

    A lead image is one address for the page's card (og:image), the feeds and the top of
    the newsletter, so a picture's main name is taken at EMAIL_WIDTH: wide enough for a
    social card, light enough for a mail read on a phone.
    """
    path = value.strip().removeprefix("./").lstrip("/")
    name = parse_name(path[len(FOLDER) + 1 :]) if path.startswith(f"{FOLDER}/") else None
    if name is None:
        return None
    if name.width == WIDTHS[-1] or name.width not in WIDTHS:  # a main name: the width mail needs
        name = email_variant(name)
    return f"{site.rstrip('/')}/{FOLDER}/{name.name}"


def media_name_of(url: str, site: str) -> MediaName | None:
    """The stored picture an absolute image URL refers to, when it is the site's own.

    The sanitiser resolves `/media/x` against the site's host and `media/x` against the
    article's page (`<site>/<slug>/media/x`): both mean the picture `x`.
    """
    parts = urlsplit(url)
    own = urlsplit(site)
    if parts.netloc.lower() != own.netloc.lower() or parts.query or not parts.path.startswith("/"):
        return None
    folder, _, name = unquote(parts.path).rpartition("/")
    if not folder.endswith(f"/{FOLDER}") and folder != f"/{FOLDER}":
        return None
    base = own.path.rstrip("/")
    allowed = {f"/{FOLDER}", f"{base}/{FOLDER}"}
    if folder not in allowed and not (folder.startswith(base + "/") and folder.count("/") == base.count("/") + 2):
        return None
    return parse_name(name)


def fit_images(markup: str, site: str) -> str:
    """`markup` (sanitised HTML) with each stored picture's `img` sized and given its widths."""
    if "<img" not in markup or f"/{FOLDER}/" not in markup:
        return markup
    root = site.rstrip("/")

    def one(match: re.Match[str]) -> str:
        attributes = dict(_ATTR_RE.findall(match.group(1)))
        name = media_name_of(html.unescape(attributes.get("src", "")), root)
        if name is None:
            return match.group(0)
        width, height = name.width, name.height
        given = attributes.get("width", "")
        narrower = plain_int(given)
        if narrower is not None and 0 < narrower < width:
            width, height = narrower, _scaled(name.width, name.height, narrower)
        kept = {k: v for k, v in attributes.items() if k not in ("src", "width", "height", "srcset", "sizes")}
        # Only a picture's main (widest) name tells every width; a narrower one is sized alone.
        main = name.width == WIDTHS[-1] or name.width not in WIDTHS
        shown = email_variant(name) if main else name
        parts = [f'src="{html.escape(root)}/{FOLDER}/{shown.name}"']
        if main and len(variants(name)) > 1:
            srcset = ", ".join(f"{html.escape(root)}/{FOLDER}/{v.name} {v.width}w" for v in variants(name))
            parts += [f'srcset="{srcset}"', f'sizes="{SIZES}"']
        parts += [f'width="{width}"', f'height="{height}"']
        parts += [f'{k}="{v}"' for k, v in kept.items()]
        return f"<img {' '.join(parts)}{match.group(2)}>"

    return _IMG_RE.sub(one, markup)

