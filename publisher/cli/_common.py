"""What every command shares: the root group, config loading and error reporting.

The root group loads a command's module only when that command runs (or help lists it),
so `publisher --version` and `publisher status` never import the renderer, the
providers or the web app. Each module adds its commands to `cli` when imported;
`COMMANDS` says which module holds which command (a test checks it).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from publisher.errors import PublisherError

if TYPE_CHECKING:
    from rich.console import Console

    from publisher.config import Config

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Carried on the click context: where the config is, loaded once on first use."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from publisher.config import load_config

            self._config = load_config(self.config_path)
        return self._config


COMMANDS: dict[str, str] = {
    "backup": "backup",
    "restore": "backup",
    "build": "build",
    "check": "build",
    "new": "build",
    "import": "importing",
    "migrate": "migrate",
    "init": "init",
    "schedule": "schedule",
    "schedules": "schedule",
    "unschedule": "schedule",
    "send": "send",
    "status": "status",
    "serve": "serve",
    "worker": "serve",
    "subscribers": "subscribers",
    "keys": "access",
    "hooks": "access",
    "users": "users",
    "doctor": "doctor",
    "export": "export",
    "bounces": "bounces",
    "sequences": "sequences",
}
"""Command name -> the module of `publisher.cli` that defines it."""

SUMMARIES: dict[str, str] = {
    "backup": "Write the whole publication into one archive, while the daemon runs.",
    "bounces": "Bounces and complaints that come back by mail.",
    "build": "Write feeds, archive pages and newsletter previews to the output folder.",
    "check": "Validate config, articles and templates; render what a build would, write nothing.",
    "doctor": "Check the live setup end to end and say what to fix.",
    "export": (
        "Write everything the publication owns into one zip, in open formats: the articles as Markdown"
        " with front matter, the pictures, every subscriber with their status and consent (CSV), each"
        " issue with its delivery counts (CSV), and the settings."
    ),
    "hooks": "Outbound webhooks: endpoints told of subscriber and issue events.",
    "import": "Import an article page or a whole RSS/Atom feed (URL or FILE) into content/ as Markdown.",
    "init": "Start a new publication in FOLDER (default: here): config.toml and a welcome draft.",
    "keys": "API keys for /api/v1: create (shown once), list, revoke.",
    "migrate": "Move in from another service's export (zip, folder or file): articles, redirects, readers.",
    "new": "Start a draft article in the content folder.",
    "restore": "Put a publication back from ARCHIVE into an empty folder (and an empty database).",
    "schedule": "Schedule the newsletter of article SLUG for a time (kept across restarts).",
    "schedules": "List scheduled sends.",
    "send": "Send the newsletter of article SLUG to every active subscriber, exactly once.",
    "sequences": "Welcome and drip sequences (one folder each under `sequences.folder`).",
    "serve": "Run the daemon: serve feeds and subscription pages, send on schedule.",
    "status": "Show what became of each issue's messages (or of ISSUE: an id or a slug).",
    "subscribers": "Add, remove, list, count, import and export subscribers.",
    "unschedule": "Cancel the pending scheduled send SCHEDULE_ID.",
    "users": "Add, list and remove the people who sign in to the desk (/desk).",
    "worker": "Send queued messages and nothing else (no HTTP, no scheduler): one per core or host.",
}
"""Command name -> the first sentence of its help, which `publisher --help` lists without
importing every command module (a test checks each against its command)."""


_LISTING = "publisher.cli.listing"


class LazyGroup(click.Group):
    """A group whose commands are imported from their module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            if ctx.meta.get(_LISTING):
                # Only the summary is needed: a stand-in spares the import.
                return click.Command(cmd_name, help=SUMMARIES[cmd_name])
            importlib.import_module(f"publisher.cli.{COMMANDS[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta[_LISTING] = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            del ctx.meta[_LISTING]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PUBLISHER_CONFIG",
    help="The publication's config.toml (default: ./config.toml).",
)
@click.version_option(package_name="publisher")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Publish articles as feeds and email newsletters, exactly once."""
    ctx.obj = State(config_path)


def reports_errors(func: F) -> F:
    """Turn a PublisherError into its message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PublisherError as exc:
            for problem in getattr(exc, "problems", None) or (str(exc),):
                click.secho(f"error: {problem}", fg="red", err=True)
            raise SystemExit(1) from exc

    return wrapper  # type: ignore[return-value]


def table_console() -> Console:
    """Where tables are printed: on a pipe or in a log, wide enough that no cell is ever
    cut short or wrapped (a terminal gets its own width)."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=1_000_000)
    return console


def get_config(ctx: click.Context) -> Config:
    state: State = ctx.ensure_object(State)
    return state.config
