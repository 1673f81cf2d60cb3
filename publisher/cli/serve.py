"""`publisher serve`: the daemon (scheduler + HTTP app); `publisher worker`: sending only."""

from __future__ import annotations

import click

from publisher.cli._common import cli, get_config, reports_errors


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default: server.host).")
@click.option(
    "--port", default=None, type=click.IntRange(1, 65_535), help="Port to listen on (default: server.port)."
)
@click.pass_context
@reports_errors
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the daemon: serve feeds and subscription pages, send on schedule."""
    from publisher.logs import configure_logging
    from publisher.schedule.daemon import run_daemon

    config = get_config(ctx)
    configure_logging()
    run_daemon(config, host=host or config["server.host"], port=port or config["server.port"])


@cli.command()
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--interval", default=1.0, type=click.FloatRange(0.05, 3600), show_default=True,
              help="Seconds between looks for newly queued messages.")
@click.pass_context
@reports_errors
def worker(ctx: click.Context, once: bool, interval: float) -> None:
    """Send queued messages and nothing else (no HTTP, no scheduler): one per core or host."""
    from publisher.logs import configure_logging
    from publisher.services.delivering import run_worker

    config = get_config(ctx)
    configure_logging()
    sent = run_worker(config, once=once, interval=interval)
    if once:
        click.echo(f"sent {sent}")
