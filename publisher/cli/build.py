"""`publisher build`, `publisher check` and `publisher new TITLE`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
import feedparser
from rich.console import Console
from rich.markup import escape

from publisher import content
from publisher.cli._common import cli, get_config, reports_errors
from publisher.errors import ContentError, PublisherError
from publisher.mail import newsletter
from publisher.models import Article, BuildReport
from publisher.site import build
from publisher.site.build_cache import ArticleCache

_LISTED = 12
"""Written files listed by name before the rest are only counted (all with --verbose)."""


def _console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _print_names(out: Console, verb: str, names: Sequence[str], *, verbose: bool) -> None:
    shown = names if verbose else names[:_LISTED]
    for name in shown:
        out.print(f"  {verb} {escape(name)}")
    if len(names) > len(shown):
        out.print(f"  … and {len(names) - len(shown)} more (--verbose lists them all)")


def _print_warnings(warnings: Sequence[str]) -> None:
    err = _console(stderr=True)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")


@cli.command("build")
@click.option("-v", "--verbose", is_flag=True, help="List every file written.")
@reports_errors
@click.pass_context
def build_command(ctx: click.Context, verbose: bool) -> None:
    """Write feeds, archive pages and newsletter previews to the output folder."""
    config = get_config(ctx)
    started = time.perf_counter()
    now = datetime.now(UTC)
    build.output_folder(config)  # a refused output writes nothing, not even the cache
    # Only the articles whose files changed are parsed, and only the pages showing them rendered.
    cache = ArticleCache(config)
    with _build_progress() as progress:
        try:
            files = content.article_files(config)
            cache.warm(files)
            articles = content.load_articles(config, reader=cache.read, files=files)
            report = build.build_site(config, articles, now, progress=progress, cache=cache, workers=True)
        finally:
            cache.save()
    elapsed = time.perf_counter() - started
    out = _console()
    output = _shown(build.output_folder(config))
    _print_names(out, "wrote", report.written, verbose=verbose)
    _print_names(out, "removed", report.removed, verbose=verbose)
    out.print(
        f"[bold]{escape(output)}[/]: {len(report.written)} written, "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed "
        f"({_public_count(articles, now)} articles, {elapsed:.2f} s)"
    )
    _print_warnings(report.warnings)


def _progress_console() -> Console:
    return _console(stderr=True)


@contextlib.contextmanager
def _build_progress() -> Iterator[build.Progress | None]:
    """On a terminal, a line that follows the build's stages (gone once it is done)."""
    console = _progress_console()
    if not console.is_terminal:
        yield None
        return
    with console.status("reading articles", spinner="dots") as status:

        def show(stage: str, done: int, total: int) -> None:
            status.update(f"{stage} {done + 1:,}/{total:,}" if total and stage != "writing" else stage)

        yield show


def _public_count(articles: Sequence[Article], now: datetime) -> int:
    return sum(1 for a in articles if a.is_public(now))


def _feed_errors(files: dict[str, bytes]) -> list[str]:
    """Feeds that feedparser, the readers' common denominator, finds malformed."""
    errors = []
    for name, data in sorted(files.items()):
        if name.startswith("feeds/") and name.endswith(".xml"):
            parsed = feedparser.parse(data)
            if parsed.bozo:
                errors.append(f"{name}: not a well-formed feed: {parsed.bozo_exception}")
    return errors


@cli.command("check")
@reports_errors
@click.pass_context
def check_command(ctx: click.Context) -> None:
    """Validate config, articles and templates; render everything, write nothing."""
    config = get_config(ctx)
    output = build.output_folder(config)
    out = _console()
    # Every article file's problem, not only the first, so one check finds them all.
    articles, problems = content.scan_articles(config)
    if problems:
        _fail([str(p) for p in problems])
    newsletter.DkimSigner.from_config(config)  # previews are unsigned: check the key here
    now = datetime.now(UTC)
    site = build.render_site(config, articles, now)
    warnings = list(site.warnings)
    pending = [a for a in articles if not a.is_public(now)]
    # Drafts and scheduled articles are mailed later: render their newsletter now. With
    # previews switched off the build renders no newsletter at all, so render the newest
    # article's here: a broken email template must show up before a send, not during it.
    newest = [a for a in articles if a.is_public(now)][:1] if not config["build.previews"] else []
    for article in [*pending, *newest]:
        refusal = build.preview_refusal(article)
        if refusal:
            warnings.append(refusal)
            continue
        _html, _eml, notes = build.newsletter_preview(config, article)
        warnings.extend(notes)
    errors = _feed_errors(dict(site.files))
    if errors:
        _fail(errors)
    report: BuildReport = build.write_site(output, site, write=False)
    drafts = sum(1 for a in pending if a.draft)
    out.print(
        f"[green]ok[/]: config and {len(articles)} articles ({len(articles) - len(pending)} public, "
        f"{drafts} draft{'' if drafts == 1 else 's'}, {len(pending) - drafts} scheduled); "
        f"{len(site.files)} files render; a build would write {len(report.written)}, "
        f"leave {len(report.unchanged)} unchanged and remove {len(report.removed)}"
    )
    _print_warnings(list(dict.fromkeys([*warnings, *report.warnings])))


def _fail(errors: Sequence[str]) -> None:
    err = _console(stderr=True)
    for error in errors:
        err.print(f"[red]error:[/] {escape(error)}")
    raise SystemExit(1)


@cli.command("new")
@click.argument("title")
@reports_errors
@click.pass_context
def new_command(ctx: click.Context, title: str) -> None:
    """Start a draft article in the content folder."""
    config = get_config(ctx)
    now = datetime.now(UTC)
    text = content.new_draft_text(title, now, config)
    folder = config.path_of("build.content")
    path = folder / content.draft_file_name(title, now, config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError as exc:
        raise ContentError(f"{_shown(path)} already exists; edit it, or choose another title") from exc
    except OSError as exc:
        raise PublisherError(f"cannot write {_shown(path)}: {exc.strerror or exc}") from exc
    _console().print(f"Started {escape(_shown(path))} (a draft: remove `draft: true` when it is ready)")
