"""The compose deployment stays valid, takes its secrets from .env, and runs our commands."""

import ipaddress
import itertools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from issuer.settings import Settings as IssuerSettings
from resource_server.settings import Settings as ResourceServerSettings

ROOT = Path(__file__).resolve().parents[1]
needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose not installed (.ci/run installs it)",
)
needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def compose_config(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "config"], cwd=directory, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("docker-compose.yml", "Dockerfile", ".env.example"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    return tmp_path


@needs_compose
def test_compose_file_passes_docker_compose_config_with_the_env_file(project):
    shutil.copy(project / ".env.example", project / ".env")
    result = compose_config(project)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {
        "postgres",
        "redis",
        "migrate",
        "keys",
        "issuer-1",
        "issuer-2",
        "proxy",
        "resource-server",
    } <= set(services)
    for name in ("issuer-1", "issuer-2", "resource-server", "postgres", "redis", "proxy"):
        assert "healthcheck" in services[name], name
    env = services["issuer-1"]["environment"]
    assert env["ISSUER_KEYS_BACKEND"] == "database"
    assert env["ISSUER_DATABASE_URL"].startswith("postgresql+psycopg://")


@needs_compose
def test_the_services_compose_environments_are_settings_they_accept(project, monkeypatch):
    # As an operator enables the resource server's API docs (docs/scaling.md): a JSON list in
    # .env must reach the issuers as one.
    shutil.copy(project / ".env.example", project / ".env")
    with (project / ".env").open("a") as env_file:
        env_file.write('ISSUER_CORS_ORIGINS=["http://127.0.0.1:8001"]\n')
    services = yaml.safe_load(compose_config(project).stdout)["services"]
    for name, value in services["issuer-1"]["environment"].items():
        monkeypatch.setenv(name, str(value))
    issuer = IssuerSettings()
    assert issuer.cors_origins == ["http://127.0.0.1:8001"]
    assert issuer.keys_backend == "database"
    for name, value in services["resource-server"]["environment"].items():
        monkeypatch.setenv(name, str(value))
    assert ResourceServerSettings().issuer_url == issuer.url


@needs_compose
def test_long_running_services_restart_and_no_container_can_take_the_proxy_address(project):
    shutil.copy(project / ".env.example", project / ".env")
    config = yaml.safe_load(compose_config(project).stdout)
    services = config["services"]
    for name, service in services.items():
        one_shot = name in ("migrate", "keys")
        assert service.get("restart") == (None if one_shot else "unless-stopped"), name
    (network,) = config["networks"]["default"]["ipam"]["config"]
    subnet = ipaddress.ip_network(network["subnet"])
    dynamic = ipaddress.ip_network(network["ip_range"])
    assert dynamic.subnet_of(subnet)
    # The proxy's and the replicas' (nginx resolves their names once, at its start).
    pinned = ["proxy", "issuer-1", "issuer-2"]
    assert sorted(name for name, service in services.items() if "networks" in service) == sorted(
        pinned
    )
    fixed = [services[name]["networks"]["default"]["ipv4_address"] for name in pinned]
    assert len(set(fixed)) == len(fixed)
    for address in map(ipaddress.ip_address, [*fixed, network["gateway"]]):
        assert address in subnet and address not in dynamic
    assert fixed[0] == services["issuer-1"]["environment"]["ISSUER_TRUSTED_PROXIES"]


@needs_compose
def test_compose_refuses_to_run_without_the_secrets_file(project):
    result = compose_config(project)
    assert result.returncode != 0
    assert ".env" in result.stderr


# The secrets file, and what `make run` writes in the checkout: the keys and the default
# database, with the -wal and -shm files SQLite keeps beside it while the issuer runs (the
# audit: those two were not ignored, and hold the same users and hashes).
@pytest.mark.parametrize(
    "path", [".env", "keys/some-kid.pem", "issuer.db", "issuer.db-wal", "issuer.db-shm"]
)
def test_secrets_file_is_not_committed(path):
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
    assert ignored.returncode == 0


def test_compose_services_run_the_make_run_commands():
    compose = (ROOT / "docker-compose.yml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for command in (
        "scripts/generate_keys.py",
        "scripts/migrate.py",
        "issuer.app:app",
        "resource_server.app:app",
    ):
        assert command in compose and command in makefile


PACKAGES = ("issuer", "resource_server", "servicekit")


def test_the_wheel_holds_every_file_of_the_packages(tmp_path: Path):
    """`pip install .` (the image) gets the templates, stylesheet and migrations, not only code."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    # What pip runs, without its build environment: the backend pyproject.toml names.
    build = (
        "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    wheel = tmp_path / "dist" / result.stdout.split()[-1]
    tracked = subprocess.run(
        ["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    with zipfile.ZipFile(wheel) as archive:
        missing = set(tracked) - set(archive.namelist())
    assert not missing
    assert "issuer/web/templates/login.html" in tracked
    # The verifier is a library: without the PEP 561 marker a third party's mypy reports
    # "missing library stubs or py.typed marker" and types every name of it as Any.
    assert "resource_server/py.typed" in tracked


# The oldest release of a dependency that has what the code uses. pip installs any release a
# floor allows (another package's pin can hold one back), so a floor below these installs
# cleanly and then fails: found by installing every floor and running the unit tests on it.
NEEDED_RELEASES = {
    "pydantic-settings": "2.7",  # NoDecode (issuer/settings.py): no service or script starts
    "redis": "5.0.1",  # Redis.aclose(): an issuer with ISSUER_REDIS_URL (compose's) fails to start
    # `Vary: Origin` on every answer when CORS is on (no cache hands a browser app an answer
    # without the CORS headers), and Range requests on the static files.
    "starlette": "1.7",
    # The tests' HTTP mocks: under httpx 0.28, 0.21 answers requests its routes should
    # take "not mocked" (20 of the resource server app's tests failed).
    "respx": "0.22",
    # `make lint`: ruff 0.8 would reformat a file (the style before 0.9's), and mypy 2.3 found
    # an error in the code (2.0: six; 1.11, the floor before: five).
    "ruff": "0.9",
    "mypy": "2.4",
    # Under 0.24 to 0.26 an event loop left open (an unclosed socket: a ResourceWarning, an
    # error here) failed test_the_librarys_lifespan_runs_again_on_a_new_event_loop.
    "pytest-asyncio": "1.0",
}


def test_no_dependency_floor_allows_a_release_the_code_cannot_run_on():
    declared = {}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(line)
        declared[canonicalize_name(requirement.name)] = requirement.specifier
    for name, needed in NEEDED_RELEASES.items():
        floors = [
            Version(spec.version)
            for spec in declared.get(name, ())
            if spec.operator in (">=", ">", "==", "~=")
        ]
        assert floors and max(floors) >= Version(needed), (name, str(declared.get(name)))


def test_the_build_context_is_only_what_the_dockerfile_copies():
    """Keys, databases, .env and the virtualenv never reach the Docker daemon."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything out, then back in only what is copied
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {
        source
        for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.MULTILINE)
        for source in line.split()[:-1]
    }
    assert copied == {
        "pyproject.toml",
        "README.md",
        "issuer",
        "resource_server",
        "servicekit",
        "scripts",
    }
    assert {f"!{source}" for source in copied} == {p for p in patterns if p.startswith("!")}
    # Nor inside those (a later pattern wins: these come after the inclusions).
    for secret in ("**/*.pem", "**/*.db", "**/.env", "**/__pycache__"):
        assert secret in patterns[len(copied) + 1 :], secret


def test_image_runs_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "\nUSER app" in dockerfile
    assert "FROM python:3.11-slim" in dockerfile


@needs_compose
def test_postgres_is_healthy_only_once_it_takes_the_connections_migrate_makes(project):
    """On its first start the postgres image runs a temporary server on its Unix socket alone
    (initdb, then POSTGRES_DB), stops it and starts the real one: `pg_isready` over the socket
    passes in between, and `migrate`, connecting over TCP, is refused and fails for good."""
    shutil.copy(project / ".env.example", project / ".env")
    config = yaml.safe_load(compose_config(project).stdout)
    probe = config["services"]["postgres"]["healthcheck"]["test"]
    assert probe[:2] == ["CMD", "pg_isready"]
    hosts = [value for flag, value in itertools.pairwise(probe) if flag in ("-h", "--host")]
    hosts += [arg.split("=", 1)[1] for arg in probe if arg.startswith("--host=")]
    assert hosts == ["127.0.0.1"]


@needs_compose
def test_only_the_proxy_reports_client_addresses(project):
    shutil.copy(project / ".env.example", project / ".env")
    config = yaml.safe_load(compose_config(project).stdout)
    services = config["services"]
    proxy_address = services["proxy"]["networks"]["default"]["ipv4_address"]
    for name in ("issuer-1", "issuer-2"):
        assert services[name]["environment"]["ISSUER_TRUSTED_PROXIES"] == proxy_address
    for name in ("issuer-1", "issuer-2", "resource-server"):
        assert leaves_client_addresses_alone(services[name]["command"]), name
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    # The edge proxy replaces the client's header instead of appending to it.
    assert "X-Forwarded-For $remote_addr" in nginx


@pytest.mark.parametrize("client", ["203.0.113.7", "2001:db8::7"])
def test_the_proxy_sets_forwarded_the_issuer_reads_as_it_sets_x_forwarded_for(client):
    """A client's own `Forwarded` never reaches an issuer told to read that header."""
    from issuer.web.client_address import ClientAddresses, parse_networks

    nginx = NGINX_CONF.read_text()
    assert "proxy_set_header Forwarded $forwarded_for;" in directives_text(nginx)
    block = re.search(r"map \$remote_addr \$forwarded_for \{(.*?)\}", nginx, re.S)
    assert block
    entries = dict(re.findall(r"^\s*(\S+)\s+'([^']*)';", block.group(1), re.M))
    value = entries["~:"] if ":" in client else entries["default"]
    header = value.replace("$remote_addr", client)
    addresses = ClientAddresses(parse_networks(["172.30.0.10"]), "forwarded")
    scope = {"client": ("172.30.0.10", 40000), "headers": [(b"forwarded", header.encode())]}
    assert addresses.of(scope) == client


def test_the_proxy_logs_no_query_strings_and_leaves_tokens_in_urls_to_the_issuer():
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    formats = dict(re.findall(r"log_format\s+(\w+)\s+((?:'[^']*'\s*)+);", nginx))
    access_logs = re.findall(r"access_log\s+(\S+)\s+(\w+);", nginx)
    # Every access log names a format of ours (nginx's default `combined` logs the query).
    assert access_logs and all(name in formats for _, name in access_logs)
    for name in formats.values():
        for variable in ("$request ", '$request"', "$request_uri", "$args", "$query_string"):
            assert variable not in name
        assert "$http_referer" not in name and "$request_without_query" in name
    # That variable: the request line as sent (error answers change $uri and the method),
    # less the query, by nginx's PCRE pattern, which Python reads the same once its named
    # groups are spelled Python's way.
    block = re.search(r"map \$request \$request_without_query \{(.*?)\n\s*\}", nginx, re.S)
    assert block
    ((pattern, value),) = re.findall(r'"~([^"]*)"\s+"([^"]*)";', block.group(1))
    default = "-"
    assert re.search(rf'default\s+"{default}";', block.group(1))

    def logged(request_line: str) -> str:
        match = re.search(pattern.replace("(?<", "(?P<"), request_line)
        if not match:
            return default
        return re.sub(r"\$(\w+)", lambda name: match.group(name.group(1)), value)

    assert logged("GET /userinfo?access_token=abc HTTP/1.1") == "GET /userinfo HTTP/1.1"
    assert logged("POST /token HTTP/1.1") == "POST /token HTTP/1.1"
    assert logged("GET /logout?id_token_hint=a.b.c") == "GET /logout"  # cut short (414)
    assert logged("GET /a?b c?d HTTP/1.1") == default
    assert logged("GARBAGE") == default
    # The issuer refuses `?access_token=` where it reads bearer tokens (/userinfo), by its own
    # rule; a copy of that rule here refused more, and other answers, than the issuer does.
    assert "access_token" not in directives_text(nginx)
    # Error lines quote the query: none is written for the route a client might put its
    # token in the URL of.
    userinfo = re.search(r"location = /userinfo \{([^}]*)\}", directives_text(nginx))
    assert userinfo
    assert directives(userinfo.group(1), "error_log") == ["/dev/stderr crit"]
    assert directives(userinfo.group(1), "proxy_pass") == ["http://issuers"]


def test_metrics_are_not_served_through_the_proxy():
    """Scraped per replica on the compose network; through the proxy they would be public and
    alternate between replicas. The API docs stay public."""
    nginx = directives_text(NGINX_CONF.read_text())
    assert "location = /metrics { return 404; }" in nginx
    assert "/docs" not in nginx and "/openapi.json" not in nginx


# Every status nginx itself answers here: a request it cannot read (400, 494: a header too
# large), take (408, 411, 413, 414, 501, 505) or route (404), its own failure (500), and no
# replica answering (502, 504).
NGINX_OWN_STATUSES = {400, 404, 408, 411, 413, 414, 494, 500, 501, 502, 504, 505}


def test_nginx_answers_its_own_errors_as_oauth_json_that_no_cache_keeps():
    from issuer.web.forms import MAX_FORM_BYTES

    nginx = NGINX_CONF.read_text()
    pages = [value.split() for value in directives(nginx, "error_page")]
    assert {int(code) for page in pages for code in page[:-1] if code.isdigit()} >= (
        NGINX_OWN_STATUSES
    )
    (target,) = {page[-1] for page in pages}
    location = re.search(rf"location = {re.escape(target)} \{{([^}}]*)\}}", directives_text(nginx))
    assert location
    answer = location.group(1)
    assert "internal;" in answer and "default_type application/json;" in answer
    assert "add_header Cache-Control no-store always;" in answer
    variable = only(directives(answer, "return")).split()[1]
    block = re.search(rf"map \$status {re.escape(variable)} \{{(.*?)\n\s*\}}", nginx, re.S)
    assert block
    bodies = dict(re.findall(r"^\s*(\w+)\s+'([^']*)';", block.group(1), re.M))
    # 494 is answered as 400, and nginx's own failure (500) by the default.
    assert set(bodies) >= {str(code) for code in NGINX_OWN_STATUSES - {494, 500}} | {"default"}
    rfc_6749_codes = {"invalid_request", "server_error", "temporarily_unavailable"}
    for body in bodies.values():
        decoded = json.loads(body)
        assert decoded["error"] in rfc_6749_codes and decoded["error_description"]
    # What the issuer answers to a body too large (413), word for word.
    assert json.loads(bodies["413"])["error_description"] == (
        f"the request body must be at most {MAX_FORM_BYTES} bytes"
    )


def test_the_proxy_writes_the_errors_that_take_routes_down():
    """A failed upstream answer and a replica taken out (`warn`) are written, and nothing is
    written to disk, so bodies (passwords) stay in memory and large ones add no lines."""
    nginx = NGINX_CONF.read_text()
    # The one other is /userinfo's (below).
    assert directives(nginx, "error_log") == ["/dev/stderr warn", "/dev/stderr crit"]
    body_limit = nginx_size(only(directives(nginx, "client_max_body_size")))
    assert nginx_size(only(directives(nginx, "client_body_buffer_size"))) >= body_limit
    assert directives(nginx, "proxy_max_temp_file_size") == ["0"]


def test_one_failed_answer_does_not_take_a_replica_out():
    servers = directives(NGINX_CONF.read_text(), "server")
    assert len(servers) == 2
    for server in servers:
        max_fails = re.search(r"max_fails=(\d+)", server)
        assert max_fails and int(max_fails.group(1)) >= 2, server


def test_the_proxy_reads_the_largest_header_the_issuer_sends():
    """The issuer echoes a browser request into `Location` (a sign-in's way back, a POST
    turned GET, `state` in an error redirect), and refuses one longer than
    `MAX_REQUEST_LENGTH` as sent on; nginx must read the largest such header whole."""
    from issuer.oauth.errors import MAX_DESCRIPTION
    from issuer.oauth.redirect_uris import MAX_LENGTH as MAX_REDIRECT_URI
    from issuer.oidc.authorize import MAX_REQUEST_LENGTH

    nginx = NGINX_CONF.read_text()
    # A registered redirect URI whose query comes back re-encoded, every byte tripled.
    redirect_uri = "https://app.example.com/cb?x=" + "/" * MAX_REDIRECT_URI
    state = "s" * MAX_REQUEST_LENGTH  # the whole request is at most this, state included
    query = urlencode(
        {
            "error": "invalid_request",
            "error_description": "/" * MAX_DESCRIPTION,
            "state": state,
            "iss": "https://issuer.example.com/" + "x" * 200,
        }
    )
    location = f"{urlencode({'u': redirect_uri})}&{query}"
    other_headers = 1024
    buffer = nginx_size(only(directives(nginx, "proxy_buffer_size")))
    assert len(location) + other_headers <= buffer
    # nginx's own rule for the sizes (`nginx -t` refuses anything else).
    busy = nginx_size(only(directives(nginx, "proxy_busy_buffers_size")))
    count, size = only(directives(nginx, "proxy_buffers")).split()
    assert buffer <= busy <= (int(count) - 1) * nginx_size(size)


def test_nginx_takes_every_request_line_granian_takes():
    """Granian answers 414 to a request-target of 65,535 bytes or more (measured, 2.x); nginx
    must not refuse a shorter one first (a form-sent authorization request goes on as a GET)."""
    count, size = only(directives(NGINX_CONF.read_text(), "large_client_header_buffers")).split()
    longest_line = len("GET ") + 65_534 + len(" HTTP/1.1\r\n")
    assert int(count) >= 1 and nginx_size(size) >= longest_line


def test_a_replica_that_does_not_answer_is_given_up_in_time():
    """Not nginx's 60 s: a frozen replica costs a request 15 s, then (GET, HEAD) the other
    replica answers; a POST once sent is never sent again (it may have taken effect)."""
    from issuer.settings import Settings

    nginx = NGINX_CONF.read_text()
    database_timeout = Settings.model_fields["database_timeout"].default
    assert nginx_seconds(only(directives(nginx, "proxy_connect_timeout"))) <= 5
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        timeout = nginx_seconds(only(directives(nginx, name)))
        assert 3 * database_timeout <= timeout < 60, name
    retried = only(directives(nginx, "proxy_next_upstream")).split()
    assert {"error", "timeout"} <= set(retried)
    # invalid_header: the other replica would send the same answer and fail as well.
    assert "non_idempotent" not in retried and "invalid_header" not in retried
    assert "http_503" not in retried  # the issuer's own back-pressure answer


REAL_IP_LINES = re.compile(
    r"^(\s*)# ((?:set_real_ip_from|real_ip_header|real_ip_recursive) .*;)$", re.M
)


@needs_compose
def test_the_real_ip_lines_name_the_gateway_host_connections_come_from(project):
    """Behind a TLS proxy on the host, nginx believes its X-Forwarded-For from the compose
    network's gateway (where Docker delivers host connections from), by the issuer's rule."""
    shutil.copy(project / ".env.example", project / ".env")
    config = yaml.safe_load(compose_config(project).stdout)
    (network,) = config["networks"]["default"]["ipam"]["config"]
    lines = [line for _, line in REAL_IP_LINES.findall(NGINX_CONF.read_text())]
    assert lines == [
        f"set_real_ip_from {network['gateway']};",
        "real_ip_header X-Forwarded-For;",
        "real_ip_recursive on;",
    ]


@needs_nginx
@pytest.mark.parametrize("real_ip", [False, True], ids=["as-shipped", "real-ip-lines-on"])
def test_the_proxy_config_passes_nginx_t(tmp_path: Path, real_ip: bool):
    # The replicas' names resolve only on the compose network; nothing is connected to.
    conf = re.sub(r"issuer-(\d):8000", r"127.0.0.\1:8000", NGINX_CONF.read_text())
    if real_ip:
        conf, count = REAL_IP_LINES.subn(r"\1\2", conf)
        assert count == 3
    (tmp_path / "nginx.conf").write_text(conf)
    (tmp_path / "logs").mkdir()
    result = subprocess.run(
        [
            "nginx",
            "-t",
            "-e",
            "stderr",
            "-p",
            f"{tmp_path}/",
            "-c",
            str(tmp_path / "nginx.conf"),
            "-g",
            f"pid {tmp_path}/nginx.pid;",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def directives(conf: str, name: str) -> list[str]:
    """The values of every `name` directive in an nginx config (comments skipped)."""
    lines = [line.split("#", 1)[0] for line in conf.splitlines()]
    return [
        " ".join(value.split())
        for value in re.findall(rf"(?:^|[{{;]|\s){name}\s+([^;{{]+);", "\n".join(lines))
    ]


def directives_text(conf: str) -> str:
    """The config without comments, each directive's whitespace collapsed."""
    lines = [line.split("#", 1)[0] for line in conf.splitlines()]
    return " ".join(" ".join(lines).split())


def only(values: list[str]) -> str:
    assert len(values) == 1, values
    return values[0]


def nginx_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60}
    match = re.fullmatch(r"(\d+)(ms|s|m)?", value)
    assert match, value
    return int(match.group(1)) * units[match.group(2) or "s"]


def nginx_size(value: str) -> int:
    units = {"k": 1024, "m": 1024 * 1024}
    if value[-1].lower() in units:
        return int(value[:-1]) * units[value[-1].lower()]
    return int(value)


def leaves_client_addresses_alone(command: list[str]) -> bool:
    """Uvicorn with --no-proxy-headers, or Granian (whose CLI reads no forwarding headers)."""
    if command[0] == "granian":
        return not any("proxy" in part or "forwarded" in part for part in command)
    return "--no-proxy-headers" in command and "--forwarded-allow-ips" not in command


def test_every_shipped_uvicorn_command_leaves_client_addresses_to_the_issuer():
    for path in ("Makefile", "servicekit/processes.py"):
        text = (ROOT / path).read_text()
        assert "--no-proxy-headers" in text, path


def test_the_shipped_granian_commands_leave_client_addresses_to_the_issuer():
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = dockerfile.split("\nCMD ", 1)[1].replace("\\\n", " ")
    command = yaml.safe_load(cmd)
    assert command[0] == "granian" and leaves_client_addresses_alone(command)
    from servicekit.processes import GRANIAN_OPTIONS

    assert all(option in command for option in GRANIAN_OPTIONS)


# What `make run` starts, faked: each service writes the settings it was given that the two
# must agree on, and waits for the other (so that neither is stopped, with `wait -n`, before
# both have written).
FAKE_UVICORN = """#!/bin/sh
here=$(dirname "$0")
env | grep -E '^(ISSUER|RS)_(URL|ISSUER_URL|AUDIENCE)=' > "$here/$1.env"
for _ in $(seq 100); do [ "$(ls "$here" | grep -c '[.]env$')" -ge 2 ] && exit 0; sleep 0.05; done
exit 1
"""


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"ISSUER_URL": "http://localhost:8000"},
        {"ISSUER_URL": "https://auth.example/", "ISSUER_AUDIENCE": "orders"},
    ],
)
def test_make_run_gives_the_resource_server_the_issuer_it_starts(tmp_path: Path, given):
    """An ISSUER_URL or ISSUER_AUDIENCE given to `make run` is the `iss` or `aud` of every
    token: the resource server was left expecting http://127.0.0.1:ISSUER_PORT and `api`,
    refused the issuer's metadata (another `issuer`) and answered every request 503 for good,
    or refused every token (401, another audience)."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, script in (("python", "#!/bin/sh\nexit 0\n"), ("uvicorn", FAKE_UVICORN)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(stat.S_IRWXU)
    (tmp_path / "venv" / ".installed-stamp").touch()  # installed: no pip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ISSUER_", "RS_"))}
    ports = ["ISSUER_PORT=18123", "RS_PORT=18124"]
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "run", f"VENV={tmp_path / 'venv'}", *ports],
        cwd=ROOT,
        env={**env, **given},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr

    def settings(app: str) -> dict[str, str]:
        lines = (bin_dir / f"{app}.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    issuer, resource_server = settings("issuer.app:app"), settings("resource_server.app:app")
    assert issuer["ISSUER_URL"] == given.get("ISSUER_URL", "http://127.0.0.1:18123")
    assert resource_server["RS_ISSUER_URL"] == issuer["ISSUER_URL"]
    assert resource_server["RS_AUDIENCE"] == given.get("ISSUER_AUDIENCE", "api")
