"""The deployment files agree with the code: the compose config validates, the compose file and
the Dockerfile only reference files that exist, and the ports and commands line up.

Docker itself is not run here (no engine on CI machines); these are the checks that catch a
renamed file or a config key the daemon no longer accepts.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from typing import Any

import pytest
import yaml

from core.errors import ConfigError
from daemon.config.load import load_config
from devnet import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE_CONFIG = REPO_ROOT / "deploy" / "config.compose.yaml"
CONTAINER_CONFIG = "/etc/crossmargin/config.yaml"
ENV = {"DB_PASSWORD": "correct-horse-battery", "CROSSMARGIN_API_TOKEN": "t0ken" * 8}


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the << merge keys like compose does
    assert isinstance(data, dict)
    return data


def test_the_compose_config_validates_with_the_compose_environment() -> None:
    config = load_config(COMPOSE_CONFIG, env=ENV)
    assert config.database_url == (
        "postgresql+asyncpg://crossmargin:correct-horse-battery@postgres:5432/crossmargin"
    )
    assert config.mqtt.url == "mqtt://mosquitto:1883"
    assert [c.rpc_urls for c in config.chains] == [
        ["http://anvil-l1:8545"],
        ["http://anvil-l2:8545"],
    ]
    assert config.api.listen == "0.0.0.0:8080"
    assert config.api.token is not None
    assert config.api.token.get_secret_value() == ENV["CROSSMARGIN_API_TOKEN"]
    # Every variable the config needs is one compose passes to the daemon's containers.
    needed = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_CONFIG.read_text()))
    for name in ("migrate", "crossmargin"):
        assert needed <= set(compose()["services"][name]["environment"])


def test_the_compose_config_without_its_secrets_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DB_PASSWORD"):
        load_config(COMPOSE_CONFIG, env={"CROSSMARGIN_API_TOKEN": ENV["CROSSMARGIN_API_TOKEN"]})


def test_compose_services_reference_existing_files_and_line_up() -> None:
    data = compose()
    services = data["services"]
    assert set(services) == {
        "postgres",
        "mosquitto",
        "anvil-l1",
        "anvil-l2",
        "migrate",
        "crossmargin",
    }
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in data["volumes"], f"{name} uses undeclared volume {source}"
        build = service.get("build")
        if build is not None:
            assert (REPO_ROOT / build / "Dockerfile").is_file()
    daemon, migrate = services["crossmargin"], services["migrate"]
    assert daemon["command"] == ["run", "-c", CONTAINER_CONFIG]
    assert migrate["command"] == ["migrate", "-c", CONTAINER_CONFIG]
    assert daemon["ports"] == ["127.0.0.1:8080:8080"]
    assert daemon["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert daemon["depends_on"]["postgres"] == {"condition": "service_healthy"}
    config = load_config(COMPOSE_CONFIG, env=ENV)
    chain_ids = {c.rpc_urls[0].split("//")[1].split(":")[0]: c.chain_id for c in config.chains}
    for host, chain_id in chain_ids.items():
        command = services[host]["command"]
        assert command[command.index("--chain-id") + 1] == str(chain_id)
        assert command[command.index("--host") + 1] == "0.0.0.0"


def test_the_dockerfile_copies_existing_paths_and_runs_the_console_script() -> None:
    text = DOCKERFILE.read_text()
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        source
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert "uv.lock" in copied
    for source in copied:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path"
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    # Everything the installed package needs at run time is copied.
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    for package in project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert package in copied
    assert {"migrations", "README.md"} <= set(copied)
    # The contract the product runs (the state-override reader's Multicall3) is package data.
    assert "chains" in copied
    assert (REPO_ROOT / "chains" / "artifacts" / "Multicall3.json").is_file()
    assert 'ENTRYPOINT ["crossmargin"]' in text
    assert "crossmargin" in project["project"]["scripts"]
    assert f'CMD ["run", "-c", "{CONTAINER_CONFIG}"]' in text
    assert "EXPOSE 8080" in text
    assert re.search(r"^USER (?!root)", text, re.MULTILINE)
    assert "/healthz" in text


def test_the_mosquitto_config_is_the_minimal_dev_listener() -> None:
    lines = [
        line
        for line in (REPO_ROOT / "deploy" / "mosquitto.conf").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert "listener 1883" in lines
    assert "allow_anonymous true" in lines
    assert "DEVELOPMENT ONLY" in (REPO_ROOT / "deploy" / "mosquitto.conf").read_text()
