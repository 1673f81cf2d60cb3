"""The site as a list of outputs: each file of a build with the key of what it is made from.

`plan_site` decides every file a build writes without rendering any: the feeds with the
articles each carries, the archive's pages, the newsletter previews, images and the
content folder's other files. Each `Output` has a key, a SHA-256 of everything its bytes
depend on: the code (`build_cache.code_fingerprint`), the settings and templates it reads
(below), and the keys of the articles it shows (an article's key changes whenever any of
its values does). A build whose record says a file was made from the same key skips its
rendering; rendering every output gives what `build.render_site` returns.

So an edited article re-renders its own page, its neighbours' (they link to it by title),
the list pages it is on, the feeds that carry it, the sitemap and the search index.

Nor are the archive's thousands of other pages planned after such an edit. The served
build's record keeps what its archive was planned from (`build_cache.PlanSnapshot`): a
hash of every kind of page's settings, templates and code, one of the public articles'
slugs and tags in order, and each article's key. When the next build has the same two
hashes, the same articles stand in the same places with the same tags, so a page's inputs
can differ only where an article's key does: `archive.Archive.affected` names those pages
and only they are planned; every other archive page is `Recorded`, its files kept as the
record has them. A new, removed, moved or retagged article, a changed setting or template
plans everything, as does a recorded file that is not as the build left it.

A changed template re-renders only the outputs that use it. Each kind of page names the
template it renders (`archive.TEMPLATES`: the index pages web/index.html, an article's
page web/article.html, ...; a newsletter preview the email templates), and its key holds
the text of that template and of every template it extends, includes or imports, found
by following `jinja2.meta.find_referenced_templates` through the graph, with the file each
name resolves to (an override in the publication's templates folder, or the default). What
a template names is kept by the build cache under the hash of its text
(`build_cache.TemplateRefs`): a build parses only a template whose text it has not seen.
A template that names another by a variable, which cannot be followed, makes the key
hold every template, as does a kind of page not in the table.

A changed setting re-renders only the outputs that read its section, by this table:

    feeds, archive pages, sitemap, search   [publication] [build] [feeds] [server]
    newsletter previews                     every section but those below
    images and the content folder's files   none (a file's size and time are its key)
    read by no output of a build            [bounces] [desk] [schedule] [fetch] [backup]
                                            [sequences] [api] [webhooks] [store]

(tests/test_build_only_changed.py renders a whole site through a config that records
every key read, and fails when a page reads outside its row.)

Articles may come without their HTML (the build's cache keeps it on disk until a page
needs it): `Bodies.full` gives one back whole, and only its own page, the feeds that
carry it and its newsletter preview ask for it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Protocol

import jinja2
from jinja2 import meta

from publisher import content
from publisher.config import Config
from publisher.content import i18n
from publisher.content.templates import default_templates_dir, template_environment, template_loader
from publisher.models import Article
from publisher.site import archive, feeds
from publisher.site.build_cache import PlanSnapshot, TemplateRefs, code_fingerprint

__all__ = [
    "MAIL_UNREAD",
    "SITE_SECTIONS",
    "Bodies",
    "InMemory",
    "Output",
    "Recorded",
    "SitePlan",
    "base_key",
    "environment_key",
    "plan_site",
    "sequence_key",
]

SITE_SECTIONS = frozenset({"publication", "build", "feeds", "server"})
"""The config sections the feeds, the archive's pages, the sitemap and the search index read."""
MAIL_UNREAD = frozenset({"bounces", "desk", "schedule", "fetch", "backup", "sequences", "api", "webhooks", "store"})
"""The config sections no output of a build reads: a newsletter preview reads all the others."""
PREVIEW_TEMPLATES = ("email/issue.html", "email/issue.txt", "email/style.css")
"""The templates an article's newsletter (and so its preview) is rendered from."""

Rendered = tuple[dict[str, bytes], tuple[str, ...]]
"""What rendering an output gives: its files' bytes, and its warnings."""


class Bodies(Protocol):
    """Articles' keys, and the articles whole."""

    def key(self, article: Article) -> str:
        """A hash of all the article's values."""

    def about(self, article: Article) -> str:
        """A hash of the article's values but its HTML: what lists and the search index show."""

    def full(self, article: Article) -> Article:
        """The article with its HTML."""


class InMemory:
    """Articles that carry their own HTML; each one's key is a hash of all its values."""

    def __init__(self) -> None:
        self._keys: dict[int, tuple[Article, str, str]] = {}

    def _known(self, article: Article) -> tuple[Article, str, str]:
        known = self._keys.get(id(article))
        if known is None or known[0] is not article:
            bare = replace(article, html="")
            known = (article, _hash(repr(article)), _hash(repr(bare)))
            self._keys[id(article)] = known
        return known

    def key(self, article: Article) -> str:
        return self._known(article)[1]

    def about(self, article: Article) -> str:
        return self._known(article)[2]

    def full(self, article: Article) -> Article:
        return article


@dataclass(frozen=True, slots=True)
class Output:
    """Files rendered together (a newsletter preview is a page and an .eml), not yet rendered."""

    stage: str
    """What a progress line calls this part of the build: "feeds", "archive pages", ..."""
    paths: tuple[str, ...]
    key: str
    render: Callable[[], Rendered]


@dataclass(frozen=True, slots=True)
class Recorded:
    """Archive pages left unplanned: their inputs are those of the served build's, so each
    file is the one its record names (see the module's docstring). A build keeps them as
    recorded, or plans everything when one is not as the build left it."""

    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SitePlan:
    """Every output of a build, and the warnings known before rendering, in build order.

    `items` mixes the two so that warnings keep the order a full render gives them.
    """

    items: tuple[Output | Recorded | str, ...]
    articles: int
    """How many public articles the site shows."""
    environment: str
    """The key of the code and the publication's folder, which every output's key includes:
    the served build's record is kept under it."""
    snapshot: PlanSnapshot | None = None
    """What the archive was planned from, for the record (None: no archive was planned)."""

    def outputs(self) -> Iterator[Output]:
        return (item for item in self.items if isinstance(item, Output))

    def paths(self) -> Iterator[str]:
        """Every file of the build, planned or recorded."""
        for item in self.items:
            if not isinstance(item, str):
                yield from item.paths


def base_key(config: Config) -> str:
    """The key of the code and the publication's folder (`SitePlan.environment`)."""
    hasher = hashlib.sha256(code_fingerprint().encode())
    hasher.update(str(config.root.resolve()).encode("utf-8", "surrogatepass"))
    return hasher.hexdigest()


def environment_key(config: Config) -> str:
    """A hash of what every page is made from besides articles: settings, templates, code."""
    hasher = hashlib.sha256()
    hasher.update(code_fingerprint().encode())
    hasher.update(repr(sorted((key, repr(value)) for key, value in config.values.items())).encode())
    hasher.update(str(config.root.resolve()).encode("utf-8", "surrogatepass"))
    hasher.update(_template_folders_key(config).encode())
    return hasher.hexdigest()


class _Inputs:
    """The parts of what outputs are made from besides articles, each hashed once a build:
    the code, the settings of a group of sections, the templates a page starts from."""

    def __init__(self, config: Config, refs: TemplateRefs | None = None) -> None:
        self.config = config
        self.refs = TemplateRefs() if refs is None else refs
        """The templates a template's text names, by the SHA-256 of the text (see `_read`)."""
        self.base = base_key(config)
        self._env: jinja2.Environment | None = None
        self._files: jinja2.BaseLoader | None = None
        self._keys: dict[tuple[str, tuple[str, ...] | None], str] = {}
        self._whole: str | None = None
        self._settings: dict[str, str] = {}
        self._templates: dict[tuple[str, ...], str] = {}
        self._sources: dict[str, tuple[str, str, tuple[str, ...] | None] | None] = {}

    def settings(self, group: str) -> str:
        """A hash of the settings of a group: "site", "mail" or "none" (see the table above)."""
        known = self._settings.get(group)
        if known is None:
            if group == "site":
                chosen = [(k, v) for k, v in self.config.values.items() if k.split(".", 1)[0] in SITE_SECTIONS]
            elif group == "mail":
                chosen = [(k, v) for k, v in self.config.values.items() if k.split(".", 1)[0] not in MAIL_UNREAD]
            else:
                chosen = []
            known = self._settings[group] = _hash(repr(sorted((k, repr(v)) for k, v in chosen)))
        return known

    def templates(self, roots: tuple[str, ...] | None) -> str:
        """A hash of the templates `roots` render from, followed through the template graph;
        of every template when `roots` is None or a name cannot be followed."""
        if roots == ():
            return "no templates"
        if roots is None:
            return self._every_template()
        known = self._templates.get(roots)
        if known is None:
            known = self._templates[roots] = self._closure(roots) or self._every_template()
        return known

    def key(self, group: str, roots: tuple[str, ...] | None) -> str:
        """The settings of `group` and the templates of `roots` in one hash, made once a
        build for each pair (thousands of pages share a few)."""
        known = self._keys.get((group, roots))
        if known is None:
            known = self._keys[(group, roots)] = _hash(f"{self.base}\0{self.settings(group)}\0{self.templates(roots)}")
        return known

    def _every_template(self) -> str:
        if self._whole is None:
            self._whole = _template_folders_key(self.config)
        return self._whole

    def _closure(self, roots: Iterable[str]) -> str:
        """ "" when a template names another by a variable (the graph cannot be followed)."""
        hasher = hashlib.sha256()
        seen: set[str] = set()
        todo = sorted(set(roots), reverse=True)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            found = self._read(name)
            if found is None:
                hasher.update(f"\0{name}\0missing".encode("utf-8", "surrogatepass"))
                continue  # rendering says which is missing
            filename, source, refs = found
            hasher.update(f"\0{name}\0{filename}\0{len(source)}\0{source}".encode("utf-8", "surrogatepass"))
            if refs is None:
                return ""
            todo.extend(sorted(refs, reverse=True))
        return hasher.hexdigest()

    def _read(self, name: str) -> tuple[str, str, tuple[str, ...] | None] | None:
        """A template's file, text and the templates it names (None: one by a variable),
        read once a build however many pages start from it; None if missing.

        The names come from `refs` (the build cache's record of earlier parses, by the hash
        of the template's text) when it knows this text; else Jinja parses it, and `refs`
        keeps the answer for the next build.
        """
        if name in self._sources:
            return self._sources[name]
        loader = self._loader()
        try:
            source, filename, _fresh = loader.get_source(_bare_environment(), name)
        except jinja2.TemplateNotFound:
            self._sources[name] = None
            return None
        digest = _hash(source)
        seen, refs = self.refs.find(digest)
        if not seen:
            if self._env is None:
                self._env = template_environment(self.config)
            try:
                found = list(meta.find_referenced_templates(self._env.parse(source)))
            except jinja2.TemplateSyntaxError:
                found = []  # rendering reports it, with its file and line
            refs = None if any(ref is None for ref in found) else tuple(ref for ref in found if ref is not None)
            self.refs.keep(digest, refs)
        self._sources[name] = (str(filename), source, refs)
        return self._sources[name]

    def _loader(self) -> jinja2.BaseLoader:
        if self._env is not None and self._env.loader is not None:
            return self._env.loader
        if self._files is None:
            self._files = template_loader(self.config)
        return self._files


_BARE: list[jinja2.Environment] = []


def _bare_environment() -> jinja2.Environment:
    """An environment for `FileSystemLoader.get_source`, which reads a file and asks
    nothing of it: the publication's own (translations and all) is made only to parse."""
    if not _BARE:
        _BARE.append(jinja2.Environment(autoescape=True))
    return _BARE[0]


def _template_folders_key(config: Config) -> str:
    hasher = hashlib.sha256()
    for folder in (config.path_of("build.templates"), default_templates_dir()):
        hasher.update(b"\0folder\0" + str(folder).encode("utf-8", "surrogatepass"))
        for path in sorted(_files_under(folder)):
            try:
                data = path.read_bytes()
            except OSError:
                data = b"\0unreadable"
            hasher.update(f"\0{path.relative_to(folder).as_posix()}\0{len(data)}\0".encode("utf-8", "surrogatepass"))
            hasher.update(data)
    return hasher.hexdigest()


def _files_under(folder: Path) -> Iterator[Path]:
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            yield Path(parent, name)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _key(environment: str, *inputs: str) -> str:
    # The inputs' lengths, then the inputs: one string hashed in one call (a build keys
    # thousands of outputs), and no two lists of inputs give the same string.
    lengths = ",".join(map(str, map(len, inputs)))
    return _hash(f"{environment}\0{lengths}\0{''.join(inputs)}")


def _stat_key(path: Path) -> str:
    """A file of the content folder by size and modification time, as make and rsync tell
    a changed file; reading every image at every build would cost what it saves."""
    try:
        stat = os.lstat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"


def _copy(config: Config, rel: str, path: Path) -> Rendered:
    """A file of the content folder as it is, never through a link (see `content.read_content`)."""
    return {rel: content.read_content(path, str(path), config)}, ()


def _preview(preview: Callable[[Article], Rendered], bodies: Bodies, article: Article) -> Rendered:
    return preview(bodies.full(article))


def plan_site(
    config: Config,
    public: Sequence[Article],
    now: datetime,
    bodies: Bodies,
    *,
    preview: Callable[[Article], Rendered],
    refuse: Callable[[Article], str],
    assets: Sequence[tuple[str, Path]],
    refs: TemplateRefs | None = None,
    previous: PlanSnapshot | None = None,
    sequence: str | None = None,
    compiled: jinja2.BytecodeCache | None = None,
) -> SitePlan:
    """The outputs of a build of `public` (public articles, newest first, slugs checked).

    `preview` renders an article's newsletter preview files, `refuse` says why it gets
    none ("" if it does); `assets` are the content folder's other files (path in the
    build, file). `refs` is the template graph an earlier build kept (`TemplateRefs`),
    brought up to date here. `previous` is what the served build's archive was planned
    from: the archive pages it shows unchanged are `Recorded`, not planned. `sequence` is
    `sequence_key(public)`, when the caller has it. `compiled` is where the pages' templates
    keep their compiled code between builds (`publisher.site.compiled_templates`).
    """
    inputs = _Inputs(config, refs)
    site = inputs.key("site", ())
    items: list[Output | Recorded | str] = []
    tags = feeds.tag_index(public)
    if config["feeds.per_tag"]:
        for _slug, names in tags.collisions:
            shown = ", ".join(f'"{name}"' for name in names)
            items.append(
                f"tags {shown} share one feed ({feeds.feed_path('atom', names[0])}); "
                "if they mean different things, rename one"
            )

    def feed(
        kind: feeds.FeedKind, articles: Sequence[Article], tag: str | None = None, chosen: list[Article] | None = None
    ) -> Output:
        # A tag's articles (`tagged_articles`) are those the feed would pick by its tag.
        entries = feeds.feed_entries(config, articles, now) if chosen is None else chosen
        builder = feeds.BUILDERS[kind]
        path = feeds.feed_path(kind, tag)
        return Output(
            "feeds",
            (path,),
            _key(site, "feed", kind, tag or "", *(bodies.key(a) for a in entries)),
            lambda: ({path: builder(config, [bodies.full(a) for a in entries], now, tag=tag)}, ()),
        )

    # `public` is newest first already, so a feed's entries are among the first of a list:
    # only those are filtered and sorted again, not thousands.
    limit = max(int(config["feeds.entries"]), 0)
    everything = feeds.feed_entries(config, public[:limit], now)  # the same for the three site feeds
    items.extend(feed(kind, public, chosen=everything) for kind in ("rss", "atom", "json"))
    if config["feeds.per_tag"]:
        items.extend(feed("atom", tags.tagged[slug][:limit], name) for slug, name in tags.names.items())
    taken = {path for item in items if isinstance(item, Output) for path in item.paths}

    language = str(config["publication.language"])
    note = i18n.catalog_warning(language, config.path.name if config.path else "config.toml")
    if note:
        items.append(note)
    pages = archive.Archive(config, public, tags, compiled=compiled)
    # The key of each kind of page's settings and templates: every kind the archive has,
    # so that the snapshot's context covers them all.
    kinds = {kind: inputs.key("site", roots) for kind, roots in archive.TEMPLATES.items()}
    keys = [bodies.key(article) for article in public]
    abouts = [bodies.about(article) for article in public]
    snapshot = PlanSnapshot(
        _hash("\0".join(f"{kind}\0{key}" for kind, key in sorted(kinds.items()))),
        sequence_key(public) if sequence is None else sequence,
        "\n".join(keys),
        "\n".join(abouts),
    )
    changed = _changed(previous, snapshot)
    wanted = None if changed is None else pages.affected(*changed)
    recorded: list[str] = []
    jobs = pages.jobs(bodies.key, bodies.about, bodies.full, wanted=wanted, keys=keys, abouts=abouts)
    for path, made_of, render in jobs:
        taken.add(path)
        if made_of is None or render is None:
            recorded.append(path)
            continue
        if recorded:
            items.append(Recorded(tuple(recorded)))
            recorded = []
        page = kinds.get(made_of[0])
        if page is None:
            page = kinds[made_of[0]] = inputs.key("site", archive.TEMPLATES.get(made_of[0]))
        items.append(Output("archive pages", (path,), _key(page, *made_of), _single(path, render)))
    if recorded:
        items.append(Recorded(tuple(recorded)))
    images, image_notes = archive.image_files(config, public, taken)
    for rel, source in images:
        items.append(
            Output(
                "archive pages",
                (rel,),
                _key(inputs.key("none", ()), "image", str(source), _stat_key(source)),
                partial(_copy, config, rel, source),
            )
        )
    items.extend(image_notes)
    copied = {rel: source for rel, source in images}
    taken.update(copied)

    mail = inputs.key("mail", PREVIEW_TEMPLATES)
    for article in public[: int(config["build.previews"])]:
        refusal = refuse(bodies.full(article))
        if refusal:
            items.append(refusal)
            continue
        paths = (f"newsletters/{article.slug}.html", f"newsletters/{article.slug}.eml")
        items.append(
            Output(
                "newsletter previews",
                paths,
                _key(mail, "preview", bodies.key(article)),
                partial(_preview, preview, bodies, article),
            )
        )
        taken.update(paths)
    for rel, source in assets:
        if rel in taken:
            # A lead image the archive copied already is the same file; anything else is in the way.
            if copied.get(rel) != source.resolve():
                items.append(f"{rel} in the content folder is in the way of a page the build writes; rename it")
            continue
        items.append(
            Output(
                "writing",
                (rel,),
                _key(inputs.key("none", ()), "asset", str(source), _stat_key(source)),
                partial(_copy, config, rel, source),
            )
        )
    return SitePlan(tuple(items), len(public), inputs.base, snapshot)


def sequence_key(public: Sequence[Article]) -> str:
    """`PlanSnapshot.sequence` of the public articles, in the site's order."""
    return _hash(repr([(article.slug, article.tags) for article in public]))


def _changed(previous: PlanSnapshot | None, now: PlanSnapshot) -> tuple[list[int], list[int]] | None:
    """The positions of the articles whose key changed since `previous`, and of those whose
    key without the HTML did; None when `previous` does not describe the same articles in
    the same order with the same tags, settings, templates and code."""
    if previous is None or previous.context != now.context or previous.sequence != now.sequence:
        return None
    if previous.keys == now.keys and previous.abouts == now.abouts:
        return [], []
    old_keys, new_keys = previous.keys.split("\n"), now.keys.split("\n")
    old_abouts, new_abouts = previous.abouts.split("\n"), now.abouts.split("\n")
    if len(old_keys) != len(new_keys) or len(old_abouts) != len(new_abouts) or len(new_keys) != len(new_abouts):
        return None
    retold = [n for n, (old, new) in enumerate(zip(old_abouts, new_abouts, strict=True)) if old != new]
    edited = sorted({*retold, *(n for n, (old, new) in enumerate(zip(old_keys, new_keys, strict=True)) if old != new)})
    return edited, retold


def _single(path: str, render: Callable[[], tuple[bytes, tuple[str, ...]]]) -> Callable[[], Rendered]:
    def run() -> Rendered:
        data, notes = render()
        return {path: data}, notes

    return run
