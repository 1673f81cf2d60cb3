"""The static site: feeds, archive pages and newsletter previews, written to `build.output`.

Two halves. `render_site` is pure: articles in, a mapping of relative path to bytes out
(apart from reading templates and the content folder's other files: images and the like
beside the articles, which the site carries at the same path, `content/images/a.png` as
`images/a.png`).
`write_site` is the edge, and the site it serves switches from one whole build to the
next in one step. Builds live in folders beside the output, under `.<output>.builds/`:
the served one and its standby, the build served before it. The files that did not
change are hard links to the served build's (so their mtime, and every web server's
ETag, survive a rebuild), the rest are written there. Then the output path, a symbolic
link, is renamed onto the new build: a reader, a web server or a CDN sees the old site or
the new one, never half of each, and a build killed at any moment leaves the served site
as it was and no temp file inside it. A small build writes into the standby, brought up
to date by the few files the two differ by (`standby.py`), so one edit costs a few
files, not a copy of the site; without a standby it can trust, a build stages a
hard-linked copy of the served build (the full path) and clears the other builds after
the switch. An output that is still a plain folder (from an older publisher, or made by
hand) becomes the first of these builds.

`build_site` is the two at once, and incremental: the site is planned as outputs, each
with a key of what it is made from (`publisher.site.outputs`), and an output whose key the
served build's record (`publisher.site.build_cache.RenderRecord`) has, with its files still
as that build left them, is not rendered again; the others are rendered and written
into the stage one by one, so a build holds one page at a time, never the whole site.
Hundreds to render (a first build, a new template) go to forked worker processes when
the caller allows it. Rendering every output gives exactly what `render_site` returns.

An output folder shared with the author's own files is safe: the manifest records every
file a build wrote with its hash, and only those are ever replaced or removed; the
author's other files are carried into each new build. A file of the author's in the
way of a new page stops the build before anything is written; a stale file the author
has edited since is kept. `publisher serve` answers only for the files in the manifest.

Nothing is removed or replaced that a build did not make. Nothing is written or
removed through a link inside the output (a folder of it that is a link stops the
build), and the output path must be the build's own link or a plain folder: a link the
author made is refused, not replaced. An old build goes file by file, only what a build
wrote or carried into the new one: a file made in it while it was served (a program
writing into the output, a database's journal) is kept, with its folder, and a warning
names it.

The output must be a folder of its own: `output_folder` refuses one that is, or
contains, the publication folder, the content or template folders, the database and
its journal files, the outbox, the DKIM keys, the build cache or the generated secret,
since anything in it may end up on the web. The content folder's files are copied as
they are, never through a symbolic link (`content.link_refusal`).

Newsletter previews cost a Jinja and premailer run each (tens of milliseconds), so only
the newest `build.previews` articles get one: that is where an author looks before a
send, and a back catalogue of a thousand articles still builds in seconds. An article
too long to be a newsletter at all gets no preview, only a warning: rendering one costs
about ten seconds a megabyte, and Gmail would show the first hundred kilobytes.

The parts, re-exported here so that callers work with one module:

    planning.py  the pure half: `render_site`, the plan of outputs, previews, slugs
    writing.py   the edge: `build_site`, `write_site`, the staged build and the switch;
                 `check_build`, a build that compares and writes nothing
    standby.py   the standby build, its record and journal: a small build's stage
    files.py     the output's folder, its manifest, and what may be replaced or removed
"""

from __future__ import annotations

from publisher.site.build.files import MANIFEST, builds_folder, manifest_files, output_folder
from publisher.site.build.planning import (
    PREVIEW_MANAGE,
    PREVIEW_MAX_HTML,
    PREVIEW_UNSUBSCRIBE,
    Progress,
    Site,
    newsletter_preview,
    preview_refusal,
    render_site,
)
from publisher.site.build.writing import Checked, build_site, check_build, write_site

__all__ = [
    "MANIFEST",
    "PREVIEW_MANAGE",
    "PREVIEW_MAX_HTML",
    "PREVIEW_UNSUBSCRIBE",
    "Checked",
    "Progress",
    "Site",
    "build_site",
    "builds_folder",
    "check_build",
    "manifest_files",
    "newsletter_preview",
    "output_folder",
    "preview_refusal",
    "render_site",
    "write_site",
]
