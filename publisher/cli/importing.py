"""`publisher import URL|FILE`: an article page or a whole feed into content/."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from publisher.cli._common import cli, get_config, reports_errors
from publisher.models import Article


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _describe(article: Article) -> str:
    parts = [f"{article.date:%Y-%m-%d}"]
    if article.updated:
        parts.append(f"updated {article.updated:%Y-%m-%d}")
    if article.author:
        parts.append(f"by {article.author}")
    return f"{article.title} ({', '.join(parts)})"


@cli.command("import")
@click.argument("location")
@click.option("--force", is_flag=True, help="Replace an article imported before (same slug).")
@click.option(
    "--base-url",
    metavar="URL",
    help="For a FILE: the address the page was saved from, to resolve its relative links "
    "(default: the page's canonical link).",
)
@click.option(
    "--send/--no-send",
    default=None,
    help="Let the daemon mail the imported articles as new ones (default: yes for one page, "
    "no for a whole feed, whose articles join the archive and feeds only).",
)
@reports_errors
@click.pass_context
def import_command(ctx: click.Context, location: str, force: bool, base_url: str | None, send: bool | None) -> None:
    """Import an article page or a whole RSS/Atom feed (URL or FILE) into content/ as Markdown."""
    config = get_config(ctx)
    now = datetime.now(UTC)
    # Extraction pulls in trafilatura and lxml: loaded only when importing, not for every command.
    from publisher.services.article_import import import_articles

    imported = import_articles(config, location, now=now, force=force, base_url=base_url, send=send)
    out = Console(highlight=False, soft_wrap=True)
    for path, article in imported.written:
        out.print(f"imported [bold]{escape(_shown(path))}[/]: {escape(_describe(article))}")
    if imported.filed:
        out.print("filed as back catalogue: in the archive and feeds, not mailed")
    out.print("Check the Markdown, then run `publisher build`.")
