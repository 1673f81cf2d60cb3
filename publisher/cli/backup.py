"""`publisher backup [--to FOLDER_OR_FILE]` and `publisher restore ARCHIVE [--into FOLDER]`."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.cli._common import State, cli, get_config, reports_errors

__all__ = ["backup", "restore"]


def _size(n: int) -> str:
    if n < 1000:
        return f"{n:,} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:,.1f} {unit}"


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)


@cli.command()
@click.option(
    "--to", "to", type=click.Path(path_type=Path),
    help="A folder for the archive, or the archive's own name (.tar.gz). Default: [backup] folder.",
)
@click.pass_context
@reports_errors
def backup(ctx: click.Context, to: Path | None) -> None:
    """Write the whole publication into one archive, while the daemon runs.

    The archive holds config.toml, the articles and pictures, the template overrides and
    the database (every subscriber and what each was sent); not the secrets, which it names.
    """
    from publisher.services import backup as service

    made = service.create_backup(get_config(ctx), now=datetime.now(UTC), to=to)
    store = "SQLite" if made.store == "sqlite" else "PostgreSQL"
    click.echo(
        f"wrote {_shown(made.path)}: {_size(made.size)}, {made.files} files, the {store} database "
        f"({service.summary_of(made.ledger) if made.ledger else 'dumped with pg_dump'}), in {made.seconds:.1f} s"
    )
    if made.left_out:
        click.echo("not in the archive; keep your own copy of each (a password manager) for a restore:")
        for item in made.left_out:
            click.echo(f"  {item}")
    click.echo("secrets from the environment (PUBLISHER_SECRET, the provider's key) are never in an archive")
    click.echo(f"the archive holds every subscriber's address: keep a copy off this server. Restore with "
               f"`publisher restore {_shown(made.path)} --into NEW_FOLDER`")


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--into", "into", type=click.Path(path_type=Path, file_okay=False),
    help="An empty (or new) folder to restore into. Default: this publication's folder, if it is empty.",
)
@click.option(
    "--store-url", "store_url", default=None,
    help="The empty database to restore into (PostgreSQL); default: the one the archived config.toml names.",
)
@click.option(
    "--check", "check_only", is_flag=True,
    help="Only check ARCHIVE (whole, every checksum, its version) and say what it holds; write nothing.",
)
@click.pass_context
@reports_errors
def restore(ctx: click.Context, archive: Path, into: Path | None, store_url: str | None, check_only: bool) -> None:
    """Put a publication back from ARCHIVE into an empty folder (and an empty database).

    Everything is checked before anything is written: the archive whole, every file's
    checksum, no path leading out of the folder. Messages recorded sent are never sent
    again; those in flight when the backup was taken go out again, marked uncertain.
    """
    from publisher.services import backup as service

    if check_only:
        manifest = service.verify_archive(archive)
        size = sum(f.size for f in manifest.files)
        click.echo(f"{archive}: whole; {len(manifest.files)} files ({_size(size)} unpacked) and the "
                   f"{'SQLite' if manifest.store == 'sqlite' else 'PostgreSQL'} database, made "
                   f"{manifest.created_at} by publisher {manifest.publisher_version}")
        return
    state: State = ctx.ensure_object(State)
    if into is None:
        into = Path(state.config_path).parent if state.config_path else Path.cwd()
    done = service.restore_backup(archive, into, now=datetime.now(UTC), store_url=store_url,
                                  env=dict(os.environ))
    store = "SQLite" if done.store == "sqlite" else "PostgreSQL"
    click.echo(f"restored {done.files} files into {_shown(done.folder)} from the backup of {done.created_at}, "
               f"with the {store} database")
    click.echo(f"ledger: {service.summary_of(done.ledger)}")
    if done.released:
        click.echo(f"{done.released} message(s) were in flight when the backup was taken: they go out again "
                   "at the next send and may reach their readers twice (`publisher status` counts them as "
                   "uncertain)")
    for change in done.config_changes:
        click.echo(f"config.toml now says {change}")
    if done.left_out:
        click.echo("not in the archive; copy these from your own safe place before sending:")
        for item in done.left_out:
            click.echo(f"  {item}")
    config = done.folder / "config.toml"
    click.echo(f"next: `publisher --config {_shown(config)} check`, then `build`, then `serve` "
               "(with PUBLISHER_SECRET and the provider's key as before: old links keep working)")
