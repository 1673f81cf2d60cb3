"""`publisher users add | list | remove | reset-password | reset-2fa`: who may sign in to the desk."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click
from sqlalchemy import Engine

from publisher import accounts
from publisher.cli._common import cli, get_config, reports_errors
from publisher.errors import AccountError
from publisher.store import open_store

ROLE_CHOICE = click.Choice([role.value for role in accounts.Role])


@contextmanager
def _engine(ctx: click.Context) -> Iterator[Engine]:
    engine = open_store(get_config(ctx).store_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _read_password() -> str:
    """From a hidden prompt (asked twice) on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise AccountError("no password on standard input; pipe it in, one line, or run on a terminal")
    return password


@cli.group("users")
def users_group() -> None:
    """Add, list and remove the people who sign in to the desk (/desk)."""


@users_group.command("add")
@click.argument("email")
@click.option("--role", type=ROLE_CHOICE, required=True,
              help="viewer reads; editor also writes and sends; owner also manages settings and users.")
@click.option("--no-password", is_flag=True,
              help="They sign in only through the sign-in provider (desk.oidc.issuer), with this address.")
@reports_errors
@click.pass_context
def add_command(ctx: click.Context, email: str, role: str, no_password: bool) -> None:
    """Add EMAIL as a desk user; the password is asked for (or read from stdin)."""
    password = None if no_password else _read_password()
    with _engine(ctx) as engine:
        user = accounts.add_user(engine, email, role=role, password=password, now=datetime.now(UTC))
    how = "; they sign in through the sign-in provider" if no_password else ""
    click.echo(f"added {user.email} ({user.role}){how}")


@users_group.command("list")
@reports_errors
@click.pass_context
def list_command(ctx: click.Context) -> None:
    """Every desk user: address, role, since when, and whether two-step sign-in is on."""
    with _engine(ctx) as engine:
        found = accounts.list_users(engine)
    if not found:
        click.echo("no desk users yet; add one with `publisher users add EMAIL --role owner`", err=True)
    for user in found:
        two_step = "two-step" if user.two_factor else "password only"
        click.echo(f"{user.email}\t{user.role}\t{user.created_at.date().isoformat()}\t{two_step}")


@users_group.command("remove")
@click.argument("email")
@reports_errors
@click.pass_context
def remove_command(ctx: click.Context, email: str) -> None:
    """Remove EMAIL's account; their sessions end at once."""
    with _engine(ctx) as engine:
        accounts.remove_user(engine, email)
    click.echo(f"removed {email.strip().lower()}")


@users_group.command("reset-password")
@click.argument("email")
@reports_errors
@click.pass_context
def reset_password_command(ctx: click.Context, email: str) -> None:
    """Give EMAIL a new password (asked for, or read from stdin); their sessions end."""
    password = _read_password()
    with _engine(ctx) as engine:
        accounts.reset_password(engine, email, password=password, now=datetime.now(UTC))
    click.echo(f"new password set for {email.strip().lower()}; their sessions have ended")


@users_group.command("reset-2fa")
@click.argument("email")
@reports_errors
@click.pass_context
def reset_two_factor_command(ctx: click.Context, email: str) -> None:
    """Forget EMAIL's second factor and recovery codes (a lost phone); their sessions end.

    They sign in with their password alone, and set two-step sign-in up again from their
    account page (at once, where desk.require_two_factor asks it of them).
    """
    with _engine(ctx) as engine:
        had = accounts.reset_two_factor(engine, email)
    who = email.strip().lower()
    if had:
        click.echo(f"two-step sign-in reset for {who}; their sessions have ended")
    else:
        click.echo(f"{who} had no two-step sign-in; their sessions have ended")
