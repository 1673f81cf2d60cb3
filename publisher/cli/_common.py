"""What every command shares: the root group, config loading and error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from publisher.config import Config, load_config
from publisher.errors import PublisherError

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Carried on the click context: where the config is, loaded once on first use."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
            click.secho(f"error: {exc}", fg="red", err=True)
            raise SystemExit(1) from exc

    return wrapper  # type: ignore[return-value]


def get_config(ctx: click.Context) -> Config:
    state: State = ctx.ensure_object(State)
    return state.config
