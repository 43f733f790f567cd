"""docker-compose.yml and the Dockerfile, checked without a Docker daemon: the services, replicas,
health checks, volumes and environment are there, and every command is a real `provenance` command."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from provenance.cli import app
from provenance.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def parse_cli(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Resolve `provenance ...` to its subcommand and parse its options as click would, without running."""
    assert argv[0] == "provenance", argv
    group: Any = typer.main.get_command(app)  # typer's own click: duck-typed
    ctx = group.make_context("provenance", list(argv[1:]), resilient_parsing=False)
    name, command, rest = group.resolve_command(ctx, list(argv[1:]))
    assert command is not None and name is not None
    sub = command.make_context(name, rest, parent=ctx)
    return name, dict(sub.params)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_services_replicas_and_roles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"api", "worker", "postgres", "chain"} <= set(services)
    for name, role in (("api", "api"), ("worker", "worker")):
        service = services[name]
        assert service["deploy"]["replicas"] >= 2
        command, params = parse_cli(service["command"])
        assert command == "serve" and params["role"] == role
        assert service["image"] == services["api"]["image"]  # one image, a role per container
        assert service.get("build") == "."


def test_health_checks_are_real_commands(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        argv = test[1:] if test[0] == "CMD" else shlex.split(test[1])
        if argv[0] == "provenance":
            command, params = parse_cli(argv)
            assert command == "health"
            assert params["worker"] is (name == "worker")
        else:
            assert argv[0] in ("pg_isready", "cast"), name
    for service in compose["services"].values():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert how["condition"] == "service_healthy"
            assert "healthcheck" in compose["services"][dependency]


def test_volumes_keep_what_must_persist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])

    def mounts(service: dict[str, Any]) -> dict[str, str]:
        pairs = (v.split(":")[:2] for v in service.get("volumes", []))
        return {target: source for source, target in pairs}

    for name in ("api", "worker"):
        data_dir = env_of(services[name])["PROVENANCE_DATA_DIR"]
        assert mounts(services[name])[data_dir] == "data"  # queued clips, reports, admin key: shared
    assert mounts(services["postgres"])["/var/lib/postgresql/data"] in declared
    chain_mounts = mounts(services["chain"])
    state = next(a.split("=", 1)[1] for a in services["chain"]["command"] if a.startswith("--state="))
    assert any(state.startswith(target + "/") for target in chain_mounts)
    assert set(chain_mounts.values()) <= declared
    for service in services.values():
        assert set(mounts(service).values()) <= declared


def test_configuration_by_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    known = {f"PROVENANCE_{name.upper()}" for name in Settings.model_fields}
    postgres = env_of(services["postgres"])
    for name in ("api", "worker"):
        env = env_of(services[name])
        assert set(env) <= known, set(env) - known
        url = env["PROVENANCE_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url
        assert url.endswith("/" + postgres["POSTGRES_DB"])
        assert env["PROVENANCE_CHAIN_RPC"].startswith("http://chain:")
    assert env_of(services["api"])["PROVENANCE_HOST"] == "0.0.0.0"
    port = env_of(services["api"])["PROVENANCE_PORT"]
    assert all(p.endswith(f":{port}") for p in services["api"]["ports"])
    rpc_port = env_of(services["api"])["PROVENANCE_CHAIN_RPC"].rsplit(":", 1)[1]
    assert f"--port={rpc_port}" in services["chain"]["command"]


def test_chain_image_matches_the_pinned_anvil(compose: dict[str, Any]) -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["@foundry-rs/anvil"]
    chain = compose["services"]["chain"]
    assert chain["image"].endswith(f":v{pinned}")
    assert chain["entrypoint"] == ["anvil"]


def test_dockerfile_copies_what_exists_and_runs_the_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--)(\S+(?: \S+)*) \S+$", text, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, flags=re.M).group(1))  # type: ignore[union-attr]
    assert parse_cli(cmd)[0] == "serve"
    health = json.loads(re.search(r"CMD (\[\"provenance\", \"health\".*\])", text).group(1))  # type: ignore[union-attr]
    assert parse_cli(health)[0] == "health"
    assert (ROOT / "contracts" / "build" / "AnchorRegistry.json").is_file()


def test_dockerfile_installs_the_pinned_torch_as_the_cpu_build_before_the_project() -> None:
    """PyPI's default Linux torch is the multi-GB CUDA build; the image must take the CPU one first."""
    text = (ROOT / "Dockerfile").read_text()
    pinned = re.search(r'"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned is not None
    torch_at = text.find(f'"torch=={pinned.group(1)}+cpu"')
    assert torch_at > 0, "the Dockerfile does not install the pinned torch's +cpu build"
    assert "https://download.pytorch.org/whl/cpu" in text
    assert torch_at < text.find("&& pip install . &&"), "torch must be installed before the project"


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    """The compose-spec JSON schema (vendored by the pinned check-jsonschema), not only YAML loading."""
    import copy
    from importlib.resources import files

    import jsonschema

    schema = json.loads(
        (files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json").read_text()
    )
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["healtcheck"] = broken["services"]["api"].pop("healthcheck")
    assert not validator.is_valid(broken), "the schema catches a misspelt key"


def test_roles_refuse_the_development_secrets(tmp_path: Path) -> None:
    """Compose's fallbacks (anvil's dev key, the password `provenance`) stop the api and worker
    roles unless development mode is stated; real secrets or PROVENANCE_DEVELOPMENT pass."""
    from provenance.service import development_secrets, open_service

    fallback = Settings(
        data_dir=tmp_path / "var",
        role="api",
        database_url="postgresql://provenance:provenance@127.0.0.1:1/provenance",
        chain_rpc="http://127.0.0.1:9",
    )
    assert len(development_secrets(fallback)) == 2
    with pytest.raises(ValueError, match="refuses to start on the chain's well-known development key and"):
        open_service(fallback)
    real = fallback.model_copy(
        update={
            "chain_private_key": "0x" + "5a" * 32,
            "database_url": "postgresql://provenance:s3cret@127.0.0.1:1/provenance",
        }
    )
    assert development_secrets(real) == []
    assert development_secrets(fallback.model_copy(update={"chain_mode": "off", "database_url": None})) == []
    compose_env = env_of(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"])
    assert compose_env.get("PROVENANCE_DEVELOPMENT") == "${PROVENANCE_DEVELOPMENT:-false}"
