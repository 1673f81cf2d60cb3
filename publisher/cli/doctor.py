"""`publisher doctor`: is this setup ready for readers? One line per check, and what to fix.

Exit codes: 0 when nothing fails (warnings included), 1 when something must be fixed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from publisher.cli._common import State, cli, get_config, reports_errors
from publisher.config import load_config
from publisher.errors import ConfigError
from publisher.services.doctor import diagnose, environment_file

_COLOURS = {"ok": "green", "warn": "yellow", "fail": "red"}


@cli.command("doctor")
@click.option(
    "--env-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The services' secrets (NAME=value lines, e.g. /etc/publisher/env), checked as the services see them.",
)
@click.pass_context
@reports_errors
def doctor_command(ctx: click.Context, env_file: Path | None) -> None:
    """Check the live setup end to end and say what to fix.

    DNS (SPF, DKIM, DMARC), the public URL's certificate, the provider's credentials
    (with a call that sends nothing), the daemon's heartbeat, free disk space and the
    newest backup's age. Sends nothing and changes nothing.
    """
    if env_file is None:
        config = get_config(ctx)
    else:
        try:
            text = env_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{env_file}: cannot be read ({getattr(exc, 'strerror', None) or exc}); it is "
                              "usually root's alone: run publisher doctor with sudo") from exc
        state: State = ctx.ensure_object(State)
        config = load_config(state.config_path, env={**os.environ, **environment_file(text, str(env_file))})
    findings = diagnose(config, datetime.now(UTC))
    for finding in findings:
        status = click.style(f"{finding.status:<4}", fg=_COLOURS[finding.status])
        click.echo(f"{status}  {finding.name}: {finding.detail}")
        if finding.fix:
            click.echo(f"      fix: {finding.fix}")
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    click.echo(f"{len(findings)} checks: {failed} to fix, {warned} to look at")
    if failed:
        raise SystemExit(1)
