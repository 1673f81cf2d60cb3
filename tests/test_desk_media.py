"""The desk's pictures over real HTTP: the upload contract the editor relies on, its
refusals and limits (held while the body arrives), the Media page, delete, and the files."""

from __future__ import annotations

import io
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from desk_support import add_users, csrf_of, quick_hashes, sign_in
from PIL import Image
from web_support import live_server, make_publication

from publisher.config import Config
from publisher.web import create_app

ARTICLE = """---
title: Sleep after a loss
date: 2026-01-05 08:00
---

Grief changes sleep. {body}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    quick_hashes(monkeypatch)
    config = make_publication(tmp_path)
    (tmp_path / "content").mkdir()
    add_users(config)
    return config


@pytest.fixture
def url(config: Config) -> Iterator[str]:
    with live_server(create_app(config)) as base:
        yield base


def media_dir(config: Config) -> Path:
    return config.root / "content" / "media"


def stored(config: Config) -> list[str]:
    return sorted(os.listdir(media_dir(config))) if media_dir(config).is_dir() else []


def photo(width: int = 1200, height: int = 800) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(out, "JPEG")
    return out.getvalue()


@contextmanager
def signed_in(url: str, who: str = "editor@example.org") -> Iterator[tuple[httpx.Client, str]]:
    with httpx.Client(base_url=url) as http:
        sign_in(http, who)
        yield http, csrf_of(http.get("/desk/media").text)


def upload(http: httpx.Client, csrf: str, data: bytes, name: str = "photo.jpg", **headers: str) -> httpx.Response:
    return http.post("/desk/media", data={"csrf": csrf}, files={"file": (name, data, "image/jpeg")}, headers=headers)


# The contract


def test_an_upload_answers_201_with_name_url_markdown_and_size(config: Config, url: str) -> None:
    """The JSON the editor's button, drag and drop and paste read."""
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, photo(2000, 1000))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"name", "url", "markdown", "width", "height"}
    assert body["url"] == f"/media/{body['name']}" and body["markdown"] == f"![]({body['url']})"
    assert (body["width"], body["height"]) == (1600, 800)
    assert body["name"] in stored(config) and len(stored(config)) == 3


def test_a_jpeg_named_md_is_taken_for_what_it_is(config: Config, url: str) -> None:
    """The name sent does not matter: a JPEG called notes.md is stored as a JPEG."""
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, photo(400, 300), name="notes.md")
    assert answer.status_code == 201 and answer.json()["name"].endswith(".jpg")


def test_a_text_file_named_jpg_is_refused_in_json(config: Config, url: str) -> None:
    """400 with a sentence that says what to upload; nothing stored."""
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, b"just some words\n", name="holiday.jpg")
    assert answer.status_code == 400
    assert "JPEG, PNG, GIF or WebP" in answer.json()["error"] and stored(config) == []


def test_an_svg_with_a_script_is_refused(config: Config, url: str) -> None:
    """SVG is refused outright, and the answer says why and what to do."""
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("/desk/settings")</script></svg>'
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, svg, name="logo.svg")
    assert answer.status_code == 400 and "SVG" in answer.json()["error"] and stored(config) == []


def test_a_viewer_and_a_stranger_cannot_upload(config: Config, url: str) -> None:
    """A viewer gets 403, no session 401, a wrong token 403: each in JSON, nothing stored."""
    with signed_in(url, "viewer@example.org") as (viewer, token):
        assert upload(viewer, token, photo()).status_code == 403
    with httpx.Client(base_url=url) as stranger:
        refused = upload(stranger, "x", photo())
        assert refused.status_code == 401 and "Sign in" in refused.json()["error"]
    with signed_in(url) as (editor, _token):
        assert upload(editor, "not-the-token", photo()).status_code == 403
    assert stored(config) == []


def test_a_plain_form_upload_comes_back_to_the_media_page(config: Config, url: str) -> None:
    """Without script, the browser asks for HTML: it is sent to the page, which shows the Markdown."""
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, photo(), accept="text/html,application/xhtml+xml")
        assert answer.status_code == 303
        page = http.get(answer.headers["location"])
    name = next(n for n in stored(config) if n.endswith("-1200x800.jpg"))
    assert f'value="![](/media/{name})"' in page.text and "Uploaded" in page.text


def test_the_media_page_gives_the_lead_images_address_and_says_how_to_caption(config: Config, url: str) -> None:
    """After an upload the address alone is there to copy into the lead image; the caption's form is shown."""
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, photo(), accept="text/html,application/xhtml+xml")
        page = http.get(answer.headers["location"]).text
    name = next(n for n in stored(config) if n.endswith("-1200x800.jpg"))
    assert f'id="uploaded-url" type="text" readonly value="/media/{name}"' in page
    assert re.search(r'<span id="caption-help">[^<]*<code>!\[[^]]*\]\(/media/… "The harbour in March"\)</code>', page)


# Limits held while the body arrives


def raw_request(url: str, head: str, body_parts: Iterator[bytes]) -> bytes:
    """Send a request by hand, stop sending when the server answers; its answer's bytes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        sock.setblocking(False)
        answer = b""
        for part in body_parts:
            with suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sock.sendall(part)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def session_headers(url: str) -> tuple[str, str]:
    with signed_in(url) as (http, csrf):
        return "; ".join(f"{k}={v}" for k, v in http.cookies.items()), csrf


def test_a_21_mb_upload_is_refused_before_it_is_read(config: Config, url: str) -> None:
    """A Content-Length past the limit is answered 413 at once: no byte of the body is sent."""
    cookie, _csrf = session_headers(url)
    head = (
        "POST /desk/media HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {21 * 1024 * 1024}\r\n\r\n"
    )
    started = time.monotonic()
    answer = raw_request(url, head, iter(()))
    assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 5
    assert b"larger than 20 MB" in answer or b"413" in answer
    assert stored(config) == []


def test_a_chunked_upload_is_cut_off_past_20_mb(config: Config, url: str) -> None:
    """Without a length, the body is counted as it comes and refused once past the limit."""
    cookie, csrf = session_headers(url)
    head = (
        "POST /desk/media HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    opening = (
        f'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    block = b"\xff" * (1024 * 1024)
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield f"{len(opening):x}\r\n".encode() + opening + b"\r\n"
        for _ in range(40):
            sent.append(1)
            yield f"{len(block):x}\r\n".encode() + block + b"\r\n"
            time.sleep(0.01)

    answer = raw_request(url, head, chunks())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert len(sent) < 30  # refused soon after 20 MB, not after all 40
    assert stored(config) == []


def test_a_connection_cut_half_way_stores_nothing(config: Config, url: str) -> None:
    """The client goes away in the middle of the picture: no file, no temporary file."""
    cookie, csrf = session_headers(url)
    picture = photo(1600, 1200) + os.urandom(400_000)
    body = (
        f'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + picture + b"\r\n--b--\r\n"
    head = (
        "POST /desk/media HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode() + body[: len(body) // 2])
        time.sleep(0.3)
    time.sleep(0.5)
    assert stored(config) == [] and not any(media_dir(config).parent.rglob(".*.jpg.*"))
    with signed_in(url) as (http, csrf):
        assert upload(http, csrf, photo(300, 200)).status_code == 201


# The Media page and delete


def test_the_media_page_lists_pictures_with_their_articles(config: Config, url: str) -> None:
    """Each picture with its size, its Markdown and the articles using it; Media in the menu."""
    with signed_in(url) as (http, csrf):
        name = upload(http, csrf, photo()).json()["name"]
        (config.root / "content" / "2026-01-05-sleep.md").write_text(
            ARTICLE.format(body=f"![A quiet bedroom](/media/{name})"), encoding="utf-8"
        )
        page = http.get("/desk/media").text
    assert '<a href="/desk/media" aria-current="page">Media</a>' in page
    assert f'value="![](/media/{name})"' in page and "1200 × 800" in page
    assert 'Used by: <a href="/desk/articles/sleep">Sleep after a loss</a>' in page
    assert f'src="/desk/media/files/{name.replace("1200x800", "480x320")}"' in page


def test_the_media_page_pages_by_60(config: Config, url: str) -> None:
    """61 pictures: 60 on the first page, the last on the second, with links between."""
    media_dir(config).mkdir(parents=True)
    for i in range(61):
        (media_dir(config) / f"{i:016x}-100x100.jpg").write_bytes(b"x")
        os.utime(media_dir(config) / f"{i:016x}-100x100.jpg", (1_700_000_000 + i, 1_700_000_000 + i))
    with signed_in(url, "viewer@example.org") as (http, _csrf):
        first = http.get("/desk/media").text
        second = http.get("/desk/media?page=2").text
    assert first.count('class="name"') == 60 and 'href="/desk/media?page=2"' in first
    assert second.count('class="name"') == 1 and f"{0:016x}-100x100.jpg" in second
    assert "upload" not in first.lower().split("<h2 id=\"pictures-h\">")[0].split("</h1>")[1]  # viewers: no form


def test_delete_asks_first_then_removes_every_width(config: Config, url: str) -> None:
    """The first press shows a confirmation; the second removes the picture."""
    with signed_in(url) as (http, csrf):
        name = upload(http, csrf, photo()).json()["name"]
        asked = http.post("/desk/media/delete", data={"csrf": csrf, "name": name})
        assert asked.status_code == 200 and "Delete this picture?" in asked.text and len(stored(config)) == 3
        done = http.post("/desk/media/delete", data={"csrf": csrf, "name": name, "confirm": "yes"})
        assert done.status_code == 303
        assert "every width of it" in http.get(done.headers["location"]).text
    assert stored(config) == []


def test_delete_is_refused_while_an_article_uses_the_picture(config: Config, url: str) -> None:
    """409, naming the article; the files stay."""
    with signed_in(url) as (http, csrf):
        name = upload(http, csrf, photo()).json()["name"]
        (config.root / "content" / "2026-01-05-sleep.md").write_text(
            ARTICLE.format(body=f"![Bed](media/{name})"), encoding="utf-8"
        )
        refused = http.post("/desk/media/delete", data={"csrf": csrf, "name": name, "confirm": "yes"})
    assert refused.status_code == 409 and "Sleep after a loss" in refused.text and len(stored(config)) == 3


def test_the_confirmation_names_the_articles_using_the_picture(config: Config, url: str) -> None:
    """Before anything is pressed twice, the page says who uses it and offers no delete."""
    with signed_in(url) as (http, csrf):
        name = upload(http, csrf, photo()).json()["name"]
        (config.root / "content" / "2026-01-05-sleep.md").write_text(
            ARTICLE.format(body=f"![Bed](/media/{name})"), encoding="utf-8"
        )
        asked = http.post("/desk/media/delete", data={"csrf": csrf, "name": name})
    assert asked.status_code == 200 and "cannot be deleted yet" in asked.text
    assert '<a href="/desk/articles/sleep">Sleep after a loss</a>' in asked.text and "Yes, delete it" not in asked.text


def test_a_viewer_cannot_delete(config: Config, url: str) -> None:
    """Delete is for editors: a viewer's press is 403 and the picture stays."""
    with signed_in(url) as (http, csrf):
        name = upload(http, csrf, photo()).json()["name"]
    with signed_in(url, "viewer@example.org") as (viewer, token):
        refused = viewer.post("/desk/media/delete", data={"csrf": token, "name": name, "confirm": "yes"})
    assert refused.status_code == 403
    assert len(stored(config)) == 3


# The files, for previews


def test_files_are_served_to_the_signed_in_only(config: Config, url: str) -> None:
    """A viewer gets the picture with its type; without a session the desk asks to sign in."""
    with signed_in(url) as (http, csrf):
        name = upload(http, csrf, photo()).json()["name"]
    with signed_in(url, "viewer@example.org") as (viewer, _token):
        got = viewer.get(f"/desk/media/files/{name}")
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg" and got.content[:2] == b"\xff\xd8"
    assert got.headers["x-content-type-options"] == "nosniff"
    with httpx.Client(base_url=url) as stranger:
        assert stranger.get(f"/desk/media/files/{name}").status_code == 303


def test_files_refuse_paths_and_links(config: Config, url: str) -> None:
    """Traversal in any spelling and a symbolic link in the folder answer 404."""
    media_dir(config).mkdir(parents=True)
    (media_dir(config) / "00000000000000aa-10x10.jpg").symlink_to(config.root / "secret.txt")
    with signed_in(url) as (http, _csrf):
        for path in ("..%2F..%2Fsecret.txt", "%2e%2e%2f%2e%2e%2fconfig.toml", "00000000000000aa-10x10.jpg",
                     "..%5c..%5csecret.txt"):
            answer = http.get(f"/desk/media/files/{path}")
            assert answer.status_code == 404, path
            assert b"not for the web" not in answer.content


# Scale


def test_five_thousand_pictures_answer_a_page_at_a_time(config: Config, url: str) -> None:
    """The page lists 5,000 pictures (15,000 files) a page at a time. How fast is measured
    by benchmarks/desk_media.py; here only that it answers, well inside a hang's bound on
    a loaded machine."""
    folder = media_dir(config)
    folder.mkdir(parents=True)
    for i in range(5000):
        for width, height in ((480, 320), (960, 640), (1600, 1067)):
            (folder / f"{i:016x}-{width}x{height}.jpg").write_bytes(b"x")
    with signed_in(url) as (http, _csrf):
        http.get("/desk/media")  # the first request warms the templates
        started = time.monotonic()
        page = http.get("/desk/media?page=50")
        took = time.monotonic() - started
    assert page.status_code == 200 and page.text.count('class="name"') == 60 and "Page 50 of 84" in page.text
    assert took < 10.0, f"{took:.2f} s"


def test_upload_contract_is_stated_in_the_module() -> None:
    """The editor is built on the module's description: it names the fields and answers."""
    from publisher.web.desk import media as desk_media

    doc = desk_media.__doc__ or ""
    for words in ("`file`", "`csrf`", '"markdown"', '"width"', "413", "text/html"):
        assert words in doc
    assert re.search(r"201 \{\"name\"", doc)


def test_a_drafts_preview_takes_every_width_from_the_desk(config: Config, url: str) -> None:
    """The editor's web preview of a draft shows the picture from the desk, srcset included:
    nothing points at the site, where a draft's pictures are not published yet."""
    with signed_in(url) as (http, csrf):
        name = upload(http, csrf, photo(2000, 1000)).json()["name"]
        form = {"csrf": csrf, "title": "Draft with a picture", "date": "2026-01-05 08:00", "tags": "",
                "summary": "", "draft": "on", "body": f"Text.\n\n![A quiet harbour](/media/{name})\n"}
        answer = http.post("/desk/articles/preview", data=form)
        assert answer.status_code == 200, answer.text
        page = http.get(answer.json()["web"]).text
        picture = re.search(r"<img [^>]*srcset=[^>]*>", page)
        assert picture, page
        assert "news.example.org/media" not in picture.group(0) and picture.group(0).count("/media/") == 4
        first = re.search(r'srcset="([^ ]+) 480w', picture.group(0))
        assert first and http.get(first.group(1)).status_code == 200


def test_a_12_mb_photo_is_taken_as_the_20_mb_limit_says(config: Config, url: str) -> None:
    """A phone's large photo, over the 8 MB the desk's other forms take and under the 20 MB
    the upload states, is stored, not refused before the upload reads it."""
    picture = photo(1600, 1200) + os.urandom(12 * 1024 * 1024)  # bytes after the image's end
    with signed_in(url) as (http, csrf):
        answer = upload(http, csrf, picture)
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] in stored(config)
