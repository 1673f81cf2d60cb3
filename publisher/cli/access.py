"""`publisher keys create | list | revoke` and `publisher hooks add | list | remove`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from publisher.cli._common import cli, get_config, reports_errors
from publisher.services import access as service
from publisher.store import open_store


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


@cli.group("keys")
def keys_group() -> None:
    """API keys for /api/v1: create (shown once), list, revoke."""


@keys_group.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(service.SCOPES),
              help="What the key may do; repeat for several.")
@click.pass_context
@reports_errors
def create_key(ctx: click.Context, name: str, scopes: Sequence[str]) -> None:
    """Create the API key NAME and print it (once: only its hash is kept)."""
    db = open_store(get_config(ctx).store_url)
    made = service.create_key(db, name, scopes, now=datetime.now(UTC))
    click.echo(made.token)
    click.echo(
        f"created key {made.key.name!r} ({' '.join(sorted(made.key.scopes))}); copy it now, "
        "it is not shown again. Send it as `Authorization: Bearer KEY`.",
        err=True,
    )


@keys_group.command("list")
@click.pass_context
@reports_errors
def list_keys(ctx: click.Context) -> None:
    """List API keys (never the keys themselves)."""
    keys = service.list_keys(open_store(get_config(ctx).store_url))
    if not keys:
        click.echo("no API keys: `publisher keys create NAME --scope ...` makes one")
        return
    table = Table("name", "scopes", "created", "last used", "revoked")
    for key in keys:
        table.add_row(key.name, " ".join(sorted(key.scopes)), _when(key.created_at), _when(key.last_used_at),
                      _when(key.revoked_at))
    Console(width=200).print(table)


@keys_group.command("revoke")
@click.argument("name")
@click.pass_context
@reports_errors
def revoke_key(ctx: click.Context, name: str) -> None:
    """Revoke the API key NAME at once."""
    key = service.revoke_key(open_store(get_config(ctx).store_url), name, now=datetime.now(UTC))
    click.echo(f"revoked key {key.name!r}")


@cli.group("hooks")
def hooks_group() -> None:
    """Outbound webhooks: endpoints told of subscriber and issue events."""


@hooks_group.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, required=True, type=click.Choice(service.EVENTS),
              help="An event to send; repeat for several.")
@click.option("--allow-private", is_flag=True,
              help="Allow a receiver on this machine or a private network (loopback, 10.x, 192.168.x).")
@click.pass_context
@reports_errors
def add_hook(ctx: click.Context, url: str, events: Sequence[str], allow_private: bool) -> None:
    """Send EVENTS to URL, signed per Standard Webhooks; prints the signing secret once.

    URL must resolve to public addresses; a receiver on this machine or your own network
    needs --allow-private.
    """
    made = service.add_endpoint(open_store(get_config(ctx).store_url), url, events, now=datetime.now(UTC),
                                allow_private=allow_private)
    click.echo(made.secret)
    click.echo(
        f"endpoint {made.endpoint.id}: {url} gets {', '.join(made.endpoint.events)}. The line above is "
        "its signing secret (shown once): give it to the receiver to verify webhook-signature.",
        err=True,
    )


@hooks_group.command("list")
@click.pass_context
@reports_errors
def list_hooks(ctx: click.Context) -> None:
    """List webhook endpoints."""
    found = service.list_endpoints(open_store(get_config(ctx).store_url))
    if not found:
        click.echo("no webhook endpoints: `publisher hooks add URL --event ...` adds one")
        return
    for endpoint in found:
        private = "\t(private address allowed)" if endpoint.allow_private else ""
        click.echo(f"{endpoint.id}\t{endpoint.url}\t{' '.join(endpoint.events)}{private}")


@hooks_group.command("remove")
@click.argument("endpoint_id", type=int)
@click.pass_context
@reports_errors
def remove_hook(ctx: click.Context, endpoint_id: int) -> None:
    """Stop sending events to endpoint ENDPOINT_ID (its waiting messages are dropped)."""
    service.remove_endpoint(open_store(get_config(ctx).store_url), endpoint_id)
    click.echo(f"removed webhook endpoint {endpoint_id}")
