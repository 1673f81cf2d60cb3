"""`publisher doctor`: is this setup ready for readers? One line per check, and what to fix.

Exit codes: 0 when nothing fails (warnings included), 1 when something must be fixed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from publisher.cli._common import cli, get_config, reports_errors
from publisher.services.doctor import diagnose

_COLOURS = {"ok": "green", "warn": "yellow", "fail": "red"}


@cli.command("doctor")
@click.pass_context
@reports_errors
def doctor_command(ctx: click.Context) -> None:
    """Check the live setup end to end and say what to fix.

    DNS (SPF, DKIM, DMARC), the public URL's certificate, the provider's credentials
    (with a call that sends nothing), the daemon's heartbeat, free disk space and the
    newest backup's age. Sends nothing and changes nothing.
    """
    findings = diagnose(get_config(ctx), datetime.now(UTC))
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
