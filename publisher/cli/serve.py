"""`publisher serve`: the daemon (scheduler + HTTP app)."""

from __future__ import annotations

import click

from publisher.cli._common import cli, get_config, reports_errors


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default: server.host).")
@click.option("--port", default=None, type=int, help="Port to listen on (default: server.port).")
@click.pass_context
@reports_errors
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the daemon: serve feeds and subscription pages, send on schedule."""
    from publisher.daemon import configure_logging, run_daemon

    config = get_config(ctx)
    configure_logging()
    run_daemon(config, host=host or config["server.host"], port=port or config["server.port"])
