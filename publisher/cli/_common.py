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


class LazyGroup(click.Group):
    """A group whose commands are imported from their module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"publisher.cli.{COMMANDS[cmd_name]}")
        return super().get_command(ctx, cmd_name)


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
