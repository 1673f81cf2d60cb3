"""deploy/: the systemd units, the Caddy and nginx sites, the container recipe and the DNS
template parse, agree with each other and with the app, and run real commands."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import click
import dns.resolver
import httpx
import pytest
import yaml
from click.testing import CliRunner

from publisher.cli import cli
from publisher.web import limits

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = ("publisher.service", "publisher-worker.service")
PUBLICATION = "/srv/publisher"
CONFIG = f"{PUBLICATION}/config.toml"
PORT = 8000
FORWARDED = ("X-Forwarded-For", "X-Forwarded-Proto")
"""The headers `publisher serve` believes from a trusted proxy."""


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / name).read_text(encoding="utf-8"))
    return parser


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined: (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def commands() -> dict[str, list[str]]:
    """Every `publisher ...` command the recipes run, as argv, by where it comes from."""
    found = {f"{name} ExecStart": shlex.split(unit(name)["Service"]["ExecStart"]) for name in UNITS}
    for instruction, rest in dockerfile():
        if instruction == "CMD":
            found["Dockerfile CMD"] = json.loads(rest)
    for service, body in compose()["services"].items():
        if "command" in body:
            found[f"compose {service}"] = list(body["command"])
    return {where: argv for where, argv in found.items() if Path(argv[0]).name == "publisher"}


def parse(argv: list[str]) -> tuple[str, click.Command, list[str]]:
    """argv split as the CLI splits it: the root options (parsed and checked), the command, its arguments."""
    names = set(cli.list_commands(click.Context(cli)))
    at = next(i for i, token in enumerate(argv) if token in names)
    root = cli.make_context("publisher", argv[1:at + 1])
    if "--config" in argv:
        assert root.params["config_path"] == option_value(argv, "--config")
    command = cli.get_command(root, argv[at])
    assert command is not None, argv
    return argv[at], command, argv[at + 1:]


def option_value(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def test_the_units_are_hardened_services() -> None:
    """Each unit runs as its own user, may write only the publication's folder, restarts on failure."""
    for name in UNITS:
        service = unit(name)["Service"]
        assert service["User"] == "publisher" and service["NoNewPrivileges"] == "yes", name
        assert service["ProtectSystem"] == "strict" and service["ReadWritePaths"] == PUBLICATION, name
        assert service["WorkingDirectory"] == PUBLICATION, name
        assert service["EnvironmentFile"] == "/etc/publisher/env", name
        assert service["Restart"] == "on-failure", name
        assert unit(name)["Install"]["WantedBy"] == "multi-user.target", name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_finds_nothing_wrong_in_the_units(tmp_path: Path) -> None:
    """systemd-analyze verify, with the program path pointed at this checkout's publisher, says nothing."""
    program = shutil.which("publisher") or str(Path(sys.executable).parent / "publisher")
    for name in UNITS:
        copy = tmp_path / name
        copy.write_text((DEPLOY / name).read_text().replace("/opt/publisher/.venv/bin/publisher", program))
        done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True,
                              timeout=60, check=False)
        complaints = [line for line in done.stderr.splitlines() if name in line]
        assert done.returncode == 0 and complaints == [], done.stderr


def test_every_command_is_a_real_command_with_real_options() -> None:
    """Each `publisher ...` the units, the Dockerfile and compose run parses as the CLI would
    parse it (unknown options or commands fail), and its --help answers."""
    found = commands()
    assert set(found) == {
        "publisher.service ExecStart", "publisher-worker.service ExecStart", "Dockerfile CMD", "compose daemon",
        "compose worker",
    }
    for where, argv in found.items():
        name, command, rest = parse(argv)
        with command.make_context(name, rest):
            pass
        helped = CliRunner().invoke(cli, [name, "--help"])
        assert helped.exit_code == 0, (where, helped.output)


def test_a_wrong_option_would_be_caught() -> None:
    """The parse above is strict: an option the command lacks fails it."""
    name, command, rest = parse(["publisher", "--config", CONFIG, "worker", "--port", "1"])
    with pytest.raises(click.NoSuchOption):
        command.make_context(name, rest)


def test_ports_and_paths_agree_across_the_files() -> None:
    """The daemon's port and config path are the same in the units, the proxies, the Dockerfile and compose."""
    found = commands()
    for where, argv in found.items():
        assert option_value(argv, "--config") == CONFIG, where
        if "serve" in argv:
            assert option_value(argv, "--port") == str(PORT), where
    caddy = (DEPLOY / "Caddyfile").read_text()
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert f"reverse_proxy 127.0.0.1:{PORT}" in caddy
    assert f"proxy_pass http://127.0.0.1:{PORT};" in nginx
    docker = dict(dockerfile())
    assert docker["EXPOSE"] == str(PORT)
    assert json.loads(docker["VOLUME"]) == [PUBLICATION]
    assert docker["WORKDIR"] == PUBLICATION
    assert f"PUBLISHER_CONFIG={CONFIG}" in " ".join(rest for instruction, rest in dockerfile() if instruction == "ENV")
    daemon = compose()["services"]["daemon"]
    assert daemon["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]
    assert "publication:/srv/publisher" in daemon["volumes"]


def test_the_proxies_send_the_headers_the_app_believes() -> None:
    """Both sites send X-Forwarded-For and X-Forwarded-Proto (the headers the app reads from a
    trusted proxy; Caddy sends them unasked, and says so), clear a visitor's Forwarded, and tell
    config.toml to trust 127.0.0.1."""
    source = Path(limits.__file__).read_text(encoding="utf-8").lower()
    caddy = (DEPLOY / "Caddyfile").read_text()
    nginx = (DEPLOY / "nginx.conf").read_text()
    for header in FORWARDED:
        assert header.lower() in source
        assert f"Caddy sends {header}" in caddy or f"and {header} (https) by itself" in caddy
        assert f"proxy_set_header {header} " in nginx
    assert "header_up -Forwarded" in caddy and 'proxy_set_header Forwarded "";' in nginx
    for text in (caddy, nginx):
        snippet = "\n".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#     "))
        server = tomllib.loads(snippet[snippet.index("[server]"):])["server"]
        assert server["port"] == PORT and "127.0.0.1" in server["trusted_proxies"]
        assert server["public_url"].startswith("https://")


def test_the_proxies_take_the_largest_body_the_app_does() -> None:
    """The app answers bodies up to 8 MB itself (webhooks, desk forms), and desk pictures up to
    20 MB: the proxies let them through."""
    from publisher.web import app as web_app
    from publisher.web.desk import auth, media

    largest = max(web_app.WEBHOOK_LIMIT, auth.MAX_UPLOAD, media.MAX_BODY)
    nginx = re.search(r"client_max_body_size (\d+)m;", (DEPLOY / "nginx.conf").read_text())
    caddy = re.search(r"max_size (\d+)MB", (DEPLOY / "Caddyfile").read_text())
    assert nginx and caddy
    assert int(nginx.group(1)) * 2**20 > largest and int(caddy.group(1)) * 10**6 > largest


def test_the_container_runs_as_a_user_from_the_readme_install() -> None:
    """python:3.x-slim, the package installed with its postgres extra from the files it copies, not root."""
    steps = dockerfile()
    assert re.fullmatch(r"python:3\.\d+-slim(-bookworm)?", steps[0][1])
    users = [rest for instruction, rest in steps if instruction == "USER"]
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(rest for instruction, rest in steps if instruction == "RUN")
    assert "pip install '.[postgres]'" in runs
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "postgres" in project["project"]["optional-dependencies"]
    copied = [rest.split()[:-1] for instruction, rest in steps if instruction == "COPY"]
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), source
    needed = {project["project"]["readme"], *project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"],
              *project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]}
    assert needed <= {s.rstrip("/") for sources in copied for s in sources}


def test_the_container_can_back_up_its_database() -> None:
    """The image has pg_dump (publisher backup's way out of PostgreSQL) of the database's major
    version: Debian 12's postgresql-client is 15, and pg_dump refuses a newer server."""
    steps = dockerfile()
    runs = " ".join(rest for instruction, rest in steps if instruction == "RUN")
    assert "apt-get install -y --no-install-recommends postgresql-client" in runs
    client_major = {"bookworm": "15"}[steps[0][1].rsplit("-", 1)[1]]
    assert compose()["services"]["db"]["image"] == f"postgres:{client_major}"


def test_compose_runs_daemon_worker_and_postgresql_on_one_volume() -> None:
    """Three services; the app's two share the publication's volume and wait for a healthy database."""
    services = compose()["services"]
    assert set(services) == {"db", "daemon", "worker"}
    assert services["db"]["image"].startswith("postgres:")
    for name in ("daemon", "worker"):
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"
        assert services[name]["volumes"] == ["publication:/srv/publisher"]
        assert services[name]["env_file"] == ".env"
    assert set(compose()["volumes"]) == {"db", "publication"}


def test_the_dns_template_names_every_record() -> None:
    """SPF, DKIM, DMARC and a return path for each provider with one."""
    text = (DEPLOY / "dns-records.txt").read_text()
    for needle in ("v=spf1", "._domainkey.", "v=DKIM1", "_dmarc.", "v=DMARC1", "pm-bounces", "amazonses.com",
                   "mailgun.org", "sendgrid.net", "publisher doctor"):
        assert needle in text, needle


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (apt-get install nginx)")
def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    """nginx -t on the site, inside a minimal main config, with a self-signed certificate."""
    from test_doctor import certificate

    cert, key = certificate(tmp_path, days=30)
    site = (DEPLOY / "nginx.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/news.example.org/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/news.example.org/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path};\n include {tmp_path}/site.conf;\n}}\n"
    )
    done = subprocess.run(["nginx", "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (apt-get install nginx)")
def test_through_the_nginx_site_the_daemon_knows_the_visit_came_over_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nginx running the site (on free ports, a self-signed certificate) in front of the unit's
    `publisher serve`, trusted as config.toml's snippet says: plain http is sent to https, the
    desk's cookie is Secure through nginx (X-Forwarded-Proto believed) but not when the daemon
    is asked directly over http, and publisher doctor finds the certificate, the app through
    the proxy and the daemon's heartbeat all well."""
    import tomlkit
    from test_doctor import certificate

    from publisher.config import load_config
    from publisher.services import doctor

    daemon_port, https_port, http_port = _free_port(), _free_port(), _free_port()
    folder = tmp_path / "srv"
    made = CliRunner().invoke(cli, ["init", str(folder), "--title", "N", "--url", f"https://localhost:{https_port}/",
                                    "--from", "n@example.org", "--timezone", "UTC"], env={"PUBLISHER_CONFIG": ""})
    assert made.exit_code == 0, made.output
    snippet = "\n".join(line.lstrip("# ") for line in (DEPLOY / "nginx.conf").read_text().splitlines()
                        if line.startswith("#     "))
    trusted = tomllib.loads(snippet[snippet.index("[server]"):])["server"]["trusted_proxies"]
    document = tomlkit.parse((folder / "config.toml").read_text())
    document["server"]["trusted_proxies"] = trusted  # type: ignore[index]
    (folder / "config.toml").write_text(tomlkit.dumps(document))
    cert, key = certificate(tmp_path, days=30)
    site = (DEPLOY / "nginx.conf").read_text()
    for old, new in (("/etc/letsencrypt/live/news.example.org/fullchain.pem", str(cert)),
                     ("/etc/letsencrypt/live/news.example.org/privkey.pem", str(key)),
                     (f"127.0.0.1:{PORT}", f"127.0.0.1:{daemon_port}"), ("news.example.org", "localhost"),
                     ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
                     ("listen 80;", f"listen 127.0.0.1:{http_port};")):
        assert old in site, old
        site = site.replace(old, new)
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path};\n proxy_temp_path {tmp_path};\n"
        f" include {tmp_path}/site.conf;\n}}\n"
    )
    nginx = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    argv = commands()["publisher.service ExecStart"]
    argv[argv.index("--port") + 1] = str(daemon_port)
    daemon = _run(argv, folder)
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    proxied = client.get(f"https://localhost:{https_port}/desk/login")
                    if proxied.status_code != 502:
                        break
                except httpx.TransportError:
                    pass
                assert daemon.poll() is None and nginx.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
            direct = client.get(f"http://127.0.0.1:{daemon_port}/desk/login")
            plain = client.get(f"http://localhost:{http_port}/desk/login")
        monkeypatch.setattr(doctor.preflight, "DNS_TIMEOUT", 0.2)
        silent = dns.resolver.Resolver(configure=False)
        silent.nameservers, silent.port = ["127.0.0.1"], 9
        found = {f.name.split(":")[0]: f for f in doctor.diagnose(
            load_config(folder / "config.toml", env={}), datetime.now(UTC), resolver=silent,
            tls_context=ssl.create_default_context(cafile=str(cert)),
        )}
    finally:
        daemon.send_signal(signal.SIGTERM)
        nginx.send_signal(signal.SIGQUIT)
        daemon.communicate(timeout=60)
        nginx.communicate(timeout=60)
    assert proxied.status_code == 200 and direct.status_code == 200
    assert "secure" in proxied.headers["set-cookie"].lower()
    assert "secure" not in direct.headers["set-cookie"].lower()
    assert plain.status_code == 301 and plain.headers["location"] == "https://localhost/desk/login"
    assert {name: found[name].status for name in ("TLS", "App", "Daemon")} == {"TLS": "ok", "App": "ok", "Daemon": "ok"}


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (apt-get install caddy)")
def test_caddy_accepts_the_site(tmp_path: Path) -> None:
    """caddy validate loads the site without an error or a warning."""
    done = subprocess.run(
        ["caddy", "validate", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if '"level":"warn"' in line or '"level":"error"' in line] == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def publication(tmp_path: Path) -> Path:
    """A new publication, as `publisher init` makes it."""
    folder = tmp_path / "srv"
    result = CliRunner().invoke(cli, [
        "init", str(folder), "--title", "Notes", "--url", "https://localhost/", "--from", "n@example.org",
        "--timezone", "UTC",
    ], env={"PUBLISHER_CONFIG": ""})
    assert result.exit_code == 0, result.output
    return folder


def _run(argv: list[str], folder: Path) -> subprocess.Popen[str]:
    program = shutil.which("publisher") or str(Path(sys.executable).parent / "publisher")
    argv = [program, *(CONFIG.replace(CONFIG, str(folder / "config.toml")) if a == CONFIG else a for a in argv[1:])]
    env = {**os.environ, "PUBLISHER_CONFIG": ""}
    return subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _serve_and_stop(argv: list[str], folder: Path) -> None:
    """Run a `publisher serve` line on a free port until it answers /subscribe, then SIGTERM it:
    it must end with exit code 0, as systemd's and Docker's stop expect."""
    argv = [*argv]
    port = _free_port()
    argv[argv.index("--port") + 1] = str(port)
    process = _run(argv, folder)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, process.stdout and process.stdout.read()
                time.sleep(0.2)
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output


def _work_and_stop(argv: list[str], folder: Path) -> None:
    """Run a `publisher worker` line until it says it is sending, and a second more (it waits
    for queued mail), then SIGTERM it. Waiting for its line, not a fixed time, keeps a slow
    start on a busy machine from being stopped before it has begun."""
    process = _run(argv, folder)
    said: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while not any(" sending for " in line for line in said):
            line = process.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(said)
            said.append(line)
        time.sleep(1)
        assert process.poll() is None, "".join(said)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(said) + output


def test_the_units_commands_run_and_stop_cleanly(publication: Path) -> None:
    """The units' own `publisher serve` and `publisher worker` lines run on a new publication,
    answer, beat, and end with exit code 0 on SIGTERM (systemd's KillSignal)."""
    found = commands()
    _serve_and_stop(found["publisher.service ExecStart"], publication)
    assert (publication / ".publisher-heartbeat").exists()
    _work_and_stop(found["publisher-worker.service ExecStart"], publication)


def test_the_containers_commands_run_on_postgresql(publication: Path) -> None:
    """compose's daemon and worker lines (the Dockerfile's CMD is the daemon's) on a config.toml
    that deploy/container.sed pointed at PostgreSQL: the schema is made, the app answers, both stop cleanly."""
    from pg_server import fresh_database, postgres_server

    found = commands()
    assert found["Dockerfile CMD"] == found["compose daemon"]
    with postgres_server() as server:
        url = fresh_database(server, "deploy_recipes")
        with (DEPLOY / "container.sed").open("rb") as script:
            subprocess.run(["sed", "-i", "-f", "-", "config.toml"], stdin=script, cwd=publication, check=True,
                           timeout=30)
        path = publication / "config.toml"
        text = path.read_text(encoding="utf-8")
        assert "postgresql+psycopg://publisher@db:5432/publisher" in text
        path.write_text(text.replace("postgresql+psycopg://publisher@db:5432/publisher", url), encoding="utf-8")
        _serve_and_stop(found["compose daemon"], publication)
        _work_and_stop(found["compose worker"], publication)
    assert not (publication / "publisher.db").exists()


def _shell_lines(text: str, *, markdown: bool) -> list[str]:
    """The shell lines of a text: a Markdown file's ```sh blocks, or a recipe's `#     ` comment lines."""
    if markdown:
        return [line for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL) for line in block.splitlines()]
    return [line.removeprefix("#").strip() for line in text.splitlines() if line.startswith("#     ")]


def _publisher_commands(lines: list[str]) -> list[list[str]]:
    """The `publisher ...` commands in shell lines, up to the first shell operator."""
    names = set(cli.list_commands(click.Context(cli)))
    found = []
    for line in lines:
        tokens = shlex.split(line, comments=True)
        for at, token in enumerate(tokens):
            following = tokens[at + 1] if at + 1 < len(tokens) else ""
            if Path(token).name == "publisher" and (following in names or following == "--config"):
                argv = tokens[at:]
                stop = next((i for i, t in enumerate(argv) if t in ("&&", "||", "|", ";", "<", ">")), len(argv))
                found.append(argv[:stop])
    return found


def test_the_guide_and_the_recipes_name_only_real_commands() -> None:
    """Every `publisher ...` in docs/going-live.md's shell blocks and in the recipes' comments
    parses as the CLI would parse it."""
    lines = _shell_lines((ROOT / "docs" / "going-live.md").read_text(encoding="utf-8"), markdown=True)
    for path in sorted(DEPLOY.iterdir()):
        lines += _shell_lines(path.read_text(encoding="utf-8"), markdown=False)
    found = _publisher_commands(lines)
    assert {argv[argv.index(n)] for argv in found for n in ("init", "doctor") if n in argv} == {"init", "doctor"}
    for argv in found:
        name, command, rest = parse(argv)
        with command.make_context(name, rest):
            pass


@pytest.mark.skipif(shutil.which("sed") is None, reason="no sed")
def test_the_container_script_points_a_new_config_at_postgresql(publication: Path) -> None:
    """deploy/container.sed, run as the guide runs it on init's config.toml: PostgreSQL, all
    interfaces, the proxy believed from Docker's networks, and nothing else changed."""
    path = publication / "config.toml"
    before = tomllib.loads(path.read_text(encoding="utf-8"))
    with (DEPLOY / "container.sed").open("rb") as script:
        subprocess.run(["sed", "-i", "-f", "-", "config.toml"], stdin=script, cwd=publication, check=True, timeout=30)
    after = tomllib.loads(path.read_text(encoding="utf-8"))
    assert after["store"]["url"] == "postgresql+psycopg://publisher@db:5432/publisher"
    assert after["server"]["host"] == "0.0.0.0" and after["server"]["trusted_proxies"] == ["172.16.0.0/12"]
    after["store"], after["server"] = before["store"], before["server"]
    assert after == before
    check = CliRunner().invoke(cli, ["--config", str(path), "check"])
    assert check.exit_code == 0, check.output
