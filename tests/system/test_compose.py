"""docker-compose.yml: cannot run here, so its shape is checked against the Dockerfile."""

import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml
from gunicorn_run import ROOT

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("system")]
INSTANCES = ("coffer-a", "coffer-b")
SHARED = ("DATABASE_URL", "REDIS_URL", "COFFER_SECRET_KEY")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _dockerfile_cmd() -> tuple[list[str], list[str]]:
    """The Dockerfile CMD, split into its migration and its `exec gunicorn` halves."""
    text = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.MULTILINE).group(1))
    assert cmd[:2] == ["sh", "-c"]
    migration, server = (shlex.split(part) for part in cmd[2].split("&&"))
    assert server[0] == "exec"
    return migration, server[1:]


def _host(url: str) -> str:
    """The host of a URL whose password may be a ${VARIABLE:?message} of compose."""
    return urlsplit(re.sub(r"\$\{[^}]*\}", "secret", url)).hostname


def test_both_instances_share_database_redis_and_signing_key(services):
    environments = [services[name]["environment"] for name in INSTANCES]
    for variable in SHARED:
        values = {env[variable] for env in environments}
        assert len(values) == 1, f"{variable} differs between instances"
    env = environments[0]
    assert env["COFFER_ENV"] == "production"
    assert env["COFFER_SECRET_KEY"].startswith("${COFFER_SECRET_KEY:?")  # required, never a value
    assert _host(env["DATABASE_URL"]) == "postgres"
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert _host(env["REDIS_URL"]) == "redis"
    assert env["COFFER_TRUSTED_PROXIES"] == "1"


def test_instances_are_built_from_the_dockerfile_on_different_host_ports(services):
    host_ports = set()
    for name in INSTANCES:
        assert services[name]["build"] == "."
        (mapping,) = services[name]["ports"]
        host_ports.add(mapping.rsplit(":", 2)[-2])
        assert mapping.endswith(":8000")
    assert len(host_ports) == len(INSTANCES)


def test_migrations_run_once_as_the_dockerfile_cmd_runs_them(services):
    migration, server = _dockerfile_cmd()
    migrating = [name for name, spec in services.items() if "upgrade" in spec.get("command", [])]
    assert migrating == ["migrate"]
    assert services["migrate"]["command"] == migration
    assert services["migrate"]["build"] == "."
    for name in INSTANCES:
        assert services[name]["command"] == server
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def test_instances_outlast_gunicorns_graceful_timeout_when_stopped(services):
    graceful = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["graceful_timeout"]
    for name in INSTANCES:
        assert int(services[name]["stop_grace_period"].removesuffix("s")) > graceful


def test_postgres_redis_and_load_balancer(compose, services):
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:15")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    assert services["redis"]["image"].startswith("redis:7")
    for name in INSTANCES:
        for dependency in ("postgres", "redis"):
            assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"

    lb = services["lb"]
    assert lb["ports"]
    config_file = lb["volumes"][0].split(":")[0]
    nginx = (ROOT / config_file).read_text()
    for name in INSTANCES:
        assert re.search(rf"^\s*server {name}:8000\b", nginx, re.MULTILINE), name
    # COFFER_TRUSTED_PROXIES=1 is right only when this proxy appends exactly one hop.
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in nginx


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed",
)
def test_docker_compose_accepts_the_file():
    env = {**os.environ, "COFFER_SECRET_KEY": "k" * 48, "POSTGRES_PASSWORD": "p" * 24}
    done = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
