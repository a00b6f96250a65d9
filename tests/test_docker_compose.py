"""docker-compose.yml, the Dockerfile and deploy/ checked against what the code reads.

No Docker needed: the files are parsed, Compose's variable interpolation is applied with the
values of ``deploy/example.env`` (what an operator starts from), and the resulting environment
of each Journeyman service is fed to the real ``Settings.from_env`` and CLI parser.

The rule for required settings (``test_role_provides_every_setting_without_default``):
every ``Settings`` field whose default is ``None`` has no usable default, so each role
(``api``, ``worker``) must receive it from compose, unless ``NOT_NEEDED`` below says why that
role does not use it. A new ``None``-default setting therefore fails this test until compose
provides it or someone records that a role can do without it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from journeyman.orchestrator import cli
from journeyman.orchestrator.config import ENVIRONMENT, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
EXAMPLE_ENV = ROOT / "deploy" / "example.env"
PG_INIT_DIR = ROOT / "deploy" / "postgres" / "initdb"

REQUIRED_SERVICES = {"postgres", "temporal", "temporal-ui", "api", "worker", "mailpit"}

# Service name -> the long-running `journeyman` command it must run.
ROLES = {"api": "api", "worker": "worker"}

# A secured cluster's settings: both roles do without them against the compose cluster, which
# listens in plaintext on the private network (the commented example in the file shows them).
TEMPORAL_SECURITY: dict[str, str] = {
    "temporal_tls": "the compose cluster listens in plaintext on the private network",
    "temporal_tls_ca_file": "only for a cluster whose certificate a private CA signed",
    "temporal_tls_cert_file": "only for a cluster that requires mTLS",
    "temporal_tls_key_file": "only for a cluster that requires mTLS",
    "temporal_tls_server_name": "only when the certificate names another host",
    "temporal_api_key": "only for Temporal Cloud with API keys",
}

# Settings with a None default that a role does not use, and why. Anything else with a None
# default must be provided to the role by compose.
NOT_NEEDED: dict[str, dict[str, str]] = {
    "api": {
        "smtp_host": "the API sends no email; the worker's activities do",
        "smtp_username": "the API sends no email",
        "smtp_password": "the API sends no email",
        "sendgrid_webhook_public_key": "SendGrid's event webhook is optional (SMTP by default)",
        "worker_metrics_port": "only workers serve the Temporal SDK's metrics",
        "sendgrid_api_key": "the API sends no messages",
        "postmark_token": "the API sends no messages",
        "twilio_account_sid": "the API sends no messages",
        "twilio_auth_token": "SMS is optional; with it the API checks Twilio's status callbacks",
        "twilio_from": "the API sends no messages",
        "fcm_project_id": "the API sends no messages",
        "fcm_credentials_file": "the API sends no messages",
        "fcm_access_token": "the API sends no messages",
        "fcm_token_uri": "the API sends no messages",
        "webhook_signing_secret": "the API sends no messages",
        "otel_endpoint": "tracing is optional: off until an operator names a collector",
        **TEMPORAL_SECURITY,
    },
    "worker": {
        "write_key": "only the API authenticates ingest calls",
        "admin_token": "only the API authenticates admin calls",
        "smtp_username": "SMTP authentication is optional (Mailpit takes mail without it)",
        "smtp_password": "SMTP authentication is optional (Mailpit takes mail without it)",
        "sendgrid_api_key": "email through SendGrid is optional (the compose setup uses SMTP)",
        "postmark_token": "email through Postmark is optional (the compose setup uses SMTP)",
        "twilio_account_sid": "SMS is optional: a journey's SMS sends fail visibly without it",
        "twilio_auth_token": "SMS is optional",
        "twilio_from": "SMS is optional",
        "fcm_project_id": "push is optional: a journey's push sends fail visibly without it",
        "fcm_credentials_file": "push is optional",
        "fcm_access_token": "push is optional (a service-account file is the usual way)",
        "fcm_token_uri": "the service-account file names its token URI",
        "webhook_signing_secret": "webhook steps are optional: they fail visibly without it",
        "sendgrid_webhook_public_key": "only the API receives SendGrid's event webhook",
        "otel_endpoint": "tracing is optional: off until an operator names a collector",
        **TEMPORAL_SECURITY,
    },
}

# Settings the API and the workers must share: same database, cluster, namespace and queue;
# and one log format and one collector, so that their lines and spans read together.
SHARED = (
    "database_url",
    "temporal_address",
    "temporal_namespace",
    "temporal_tls",
    "temporal_tls_ca_file",
    "temporal_tls_server_name",
    "temporal_api_key",
    "task_queue",
    "log_format",
    "otel_endpoint",
)

# The port each image listens on (fixed by the image, not by compose).
LISTEN_PORTS = {
    "postgres": 5432,
    "temporalio/auto-setup": 7233,
    "temporalio/server": 7233,
    "axllent/mailpit": 1025,
}

# Setting holding a network address -> images the service it names may run.
ADDRESS_SETTINGS = {
    "database_url": ("postgres",),
    "temporal_address": ("temporalio/auto-setup", "temporalio/server"),
    "smtp_host": ("axllent/mailpit",),
}

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_ENV_LINE = re.compile(r"^(?P<comment>#\s*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_PINNED_TAG = re.compile(r"^v?\d+\.\d+")


# --- Reading the files ----------------------------------------------------------------


@dataclass(frozen=True)
class ExampleEnv:
    values: dict[str, str]  # assignments an unedited copy sets (possibly to "")
    documented: dict[str, str]  # commented-out `# NAME=value` lines: optional, shown default

    def listed(self, name: str) -> bool:
        return name in self.values or name in self.documented


def read_example_env() -> ExampleEnv:
    values: dict[str, str] = {}
    documented: dict[str, str] = {}
    for raw in EXAMPLE_ENV.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE.match(raw.strip())
        if match is None:
            continue
        value = match["value"].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        (documented if match["comment"] else values)[match["name"]] = value
    return ExampleEnv(values, documented)


def raw_compose() -> dict[str, Any]:
    """docker-compose.yml as YAML (anchors and merge keys applied), not yet interpolated."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


@dataclass(frozen=True)
class Reference:
    name: str
    op: str | None  # None, "-", ":-", "?", ":?", "+", ":+"
    arg: str


def references(text: str) -> list[Reference]:
    found = []
    for match in _INTERPOLATION.finditer(text):
        if match["escaped"]:
            continue
        name, arg = match["braced"] or match["bare"], match["arg"] or ""
        # Compose allows ${A:-${B}}; this reader does not, so keep compose free of it.
        assert "$" not in arg, f"nested interpolation in {text!r}"
        found.append(Reference(name, match["op"], arg))
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation (the subset of the shell syntax Compose supports)."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        # With a colon, set-but-empty counts as unset.
        present = bool(value) if op and op.startswith(":") else value is not None
        kind = op[-1] if op else ""
        if kind == "-":
            return (value or "") if present else arg
        if kind == "?":
            if not present:
                raise LookupError(f"required variable {name} is missing: {arg}")
            return value or ""
        if kind == "+":
            return arg if present else ""
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def interpolate_all(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: interpolate_all(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_all(item, env) for item in node]
    return node


def placeholder(name: str) -> str:
    """A distinct, URL-safe stand-in for a secret the operator must fill in."""
    return "filled-" + name.lower().replace("_", "-")


def operator_env() -> dict[str, str]:
    """example.env as copied, with every empty required value filled in."""
    example = read_example_env()
    env = dict(example.values)
    for text in strings(raw_compose()):
        for ref in references(text):
            if ref.op in ("?", ":?") and not env.get(ref.name):
                env[ref.name] = placeholder(ref.name)
    return env


def compose() -> dict[str, Any]:
    resolved = interpolate_all(raw_compose(), operator_env())
    assert isinstance(resolved, dict)
    return resolved


def services() -> dict[str, dict[str, Any]]:
    found = compose().get("services")
    assert isinstance(found, dict), "docker-compose.yml has no services"
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def effective_env(service: Mapping[str, Any]) -> dict[str, str]:
    """What the process sees: the image's ENV (for services built here), then compose's."""
    env = dockerfile_env() if "build" in service else {}
    env.update(environment(service))
    return env


def settings_of(service: Mapping[str, Any]) -> Settings:
    return Settings.from_env(effective_env(service))


def none_default_fields() -> set[str]:
    return {name for name, field in Settings.model_fields.items() if field.default is None}


def image_repository(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name.removeprefix("docker.io/").removeprefix("library/")


def is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.split(":", 1)[1]
    return "latest" not in tag and _PINNED_TAG.match(tag) is not None


def container_ports(service: Mapping[str, Any]) -> list[int]:
    """The container side of each published port (short or long syntax)."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            ports.append(int(entry["target"]))
        else:
            ports.append(int(str(entry).split("/", 1)[0].rsplit(":", 1)[-1]))
    return ports


def exposed_ports(service: Mapping[str, Any]) -> set[int]:
    return {int(str(port).split("/", 1)[0]) for port in service.get("expose") or []}


def healthcheck_text(service: Mapping[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


def cli_argv(name: str, service: Mapping[str, Any]) -> list[str]:
    """The arguments a Journeyman service passes to the `journeyman` CLI."""
    entrypoint = service.get("entrypoint")
    command = service.get("command")
    if entrypoint is None:  # the image's ENTRYPOINT ["journeyman"]
        assert isinstance(command, list), f"{name}: give `command` in list form"
        return [str(arg) for arg in command]
    assert entrypoint == ["/bin/sh", "-c"], f"{name}: unexpected entrypoint {entrypoint!r}"
    assert isinstance(command, list) and len(command) == 1, f"{name}: one shell script"
    words = shlex.split(command[0])
    if words[:1] == ["exec"]:
        words = words[1:]
    assert words[:1] == ["journeyman"], f"{name}: the script must run `journeyman`"
    return words[1:]


def parse_cli(name: str, argv: list[str]) -> argparse.Namespace:
    try:
        return cli._parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{name}: `journeyman {shlex.join(argv)}` is not a valid CLI call")


def journeyman_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if "build" in svc}


# --- Services and settings ------------------------------------------------------------


def test_production_services_exist() -> None:
    missing = REQUIRED_SERVICES - services().keys()
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_environment_and_settings_list_agree() -> None:
    # The rule below is only sound if ENVIRONMENT covers every setting.
    assert set(ENVIRONMENT) == set(Settings.model_fields)
    for role, reasons in NOT_NEEDED.items():
        stale = set(reasons) - none_default_fields()
        assert not stale, f"NOT_NEEDED[{role!r}] names settings without a None default: {stale}"


def test_every_journeyman_variable_is_one_the_code_reads() -> None:
    known = set(ENVIRONMENT.values())
    used: dict[str, str] = {}
    for name, svc in raw_compose().get("services", {}).items():
        for var in environment(svc):
            used[var] = f"environment of {name}"
    for text in strings(raw_compose()):
        for ref in references(text):
            used[ref.name] = "a ${...} in docker-compose.yml"
    for var in dockerfile_env():
        used[var] = "ENV in the Dockerfile"
    example = read_example_env()
    for var in [*example.values, *example.documented]:
        used[var] = "deploy/example.env"
    unknown = {
        var: where
        for var, where in used.items()
        if var.startswith("JOURNEYMAN_") and var not in known
    }
    assert not unknown, f"JOURNEYMAN_* variables the code never reads: {unknown}"


@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_provides_every_setting_without_default(role: str) -> None:
    env = effective_env(services()[role])
    missing = [
        ENVIRONMENT[field]
        for field in sorted(none_default_fields() - set(NOT_NEEDED[role]))
        if not env.get(ENVIRONMENT[field])  # Settings.from_env treats "" as unset
    ]
    assert not missing, (
        f"{role} needs {missing} (no default in Settings); set them in docker-compose.yml "
        f"or record in NOT_NEEDED why {role} does without"
    )


@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_settings_are_valid(role: str) -> None:
    settings = settings_of(services()[role])  # raises ConfigError on a bad value
    assert settings.require_database_url()
    assert settings.require_temporal_address()
    if role == "worker":
        assert settings.smtp_host, "the worker cannot send email without JOURNEYMAN_SMTP_HOST"


def test_api_and_workers_share_database_temporal_and_queue() -> None:
    api, worker = settings_of(services()["api"]), settings_of(services()["worker"])
    differ = [ENVIRONMENT[f] for f in SHARED if getattr(api, f) != getattr(worker, f)]
    assert not differ, f"api and worker disagree on {differ}"


_COMMENTED_SETTING = re.compile(r"^\s*#\s+(?P<name>JOURNEYMAN_[A-Z_]+):\s*(?P<value>\S.*)$")


def test_the_commented_temporal_cloud_example_holds_valid_settings() -> None:
    example = {
        match["name"]: match["value"].strip('"')
        for line in COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
        if (match := _COMMENTED_SETTING.match(line))
    }
    shown = {var for var in example if var.startswith("JOURNEYMAN_TEMPORAL_")}
    wanted = {ENVIRONMENT[name] for name in TEMPORAL_SECURITY if name != "temporal_tls"}
    assert wanted <= shown, f"show these in the commented example: {sorted(wanted - shown)}"
    assert shown <= set(ENVIRONMENT.values()), "the example names variables the code never reads"
    uncommented = {var: interpolate(value, {var: "a-key"}) for var, value in example.items()}
    settings = Settings.from_env(uncommented)  # raises ConfigError on a bad combination
    assert settings.temporal_uses_tls
    assert settings.temporal_api_key is not None


@pytest.mark.parametrize(("field", "images"), sorted(ADDRESS_SETTINGS.items()))
def test_addresses_name_services_and_their_ports(field: str, images: tuple[str, ...]) -> None:
    found = services()
    worker = settings_of(found["worker"])
    value = getattr(worker, field)
    if field == "database_url":
        url = urlsplit(value.get_secret_value())
        host, port = url.hostname, url.port or 5432
    elif field == "temporal_address":
        host, _, port_text = value.rpartition(":")
        port = int(port_text)
    else:
        host, port = value, worker.smtp_port
    var = ENVIRONMENT[field]
    assert host in found, f"{var} points at {host!r}, which is not a compose service"
    target = found[host]
    image = image_repository(target["image"])
    assert image in images, f"{var}: {host} runs {image}, not one of {images}"
    assert port == LISTEN_PORTS[image], f"{var}: {image} listens on {LISTEN_PORTS[image]}"
    assert port in exposed_ports(target), f"{host} should `expose` port {port}"


def test_temporal_namespace_is_created_and_checked() -> None:
    found = services()
    namespace = settings_of(found["worker"]).temporal_namespace
    temporal = environment(found["temporal"])
    assert temporal.get("DEFAULT_NAMESPACE") == namespace, "auto-setup must create it"
    assert temporal.get("SKIP_DEFAULT_NAMESPACE_CREATION", "false") != "true"
    assert namespace in healthcheck_text(found["temporal"]).split()


def test_databases_roles_and_passwords_are_wired() -> None:
    found = services()
    scripts = sorted(PG_INIT_DIR.glob("*.sh")) + sorted(PG_INIT_DIR.glob("*.sql"))
    assert scripts, "deploy/postgres/initdb has no init script"
    script = "\n".join(path.read_text(encoding="utf-8") for path in scripts)
    mount = f"./{PG_INIT_DIR.relative_to(ROOT).as_posix()}:/docker-entrypoint-initdb.d"
    assert any(str(v).startswith(mount) for v in found["postgres"].get("volumes", []))

    owners = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+);", script))
    psql_vars = dict(re.findall(r"--set (\w+)=\"\$(\w+)\"", script))
    role_vars = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD :'(\w+)';", script))
    postgres_env = environment(found["postgres"])

    def password_of(role: str) -> str:
        assert role in role_vars, f"the init script does not create role {role}"
        return postgres_env[psql_vars[role_vars[role]]]

    url = urlsplit(settings_of(found["worker"]).require_database_url())
    database, user = url.path.lstrip("/"), url.username or ""
    assert owners.get(database) == user, f"{user} must own database {database}"
    assert url.password == password_of(user), "JOURNEYMAN_DATABASE_URL has the wrong password"

    temporal = environment(found["temporal"])
    assert temporal["SKIP_DB_CREATE"] == "true", "the init script creates Temporal's databases"
    for name in (temporal["DBNAME"], temporal["VISIBILITY_DBNAME"]):
        assert owners.get(name) == temporal["POSTGRES_USER"], f"{name} must be Temporal's"
    assert temporal["POSTGRES_PWD"] == password_of(temporal["POSTGRES_USER"])


def test_api_listens_on_its_published_and_checked_port() -> None:
    api = services()["api"]
    settings = settings_of(api)
    assert settings.api_host == "0.0.0.0", "the API must listen beyond the container"
    assert settings.api_port in container_ports(api), "publish JOURNEYMAN_API_PORT"
    probe = re.search(r"https?://[^\s'\"]+", healthcheck_text(api))
    assert probe is not None, "the api healthcheck must call GET /healthz"
    url = urlsplit(probe.group())
    assert (url.port, url.path) == (settings.api_port, "/healthz")


def test_an_operators_observability_settings_reach_api_and_workers() -> None:
    env = operator_env()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in read_example_env().documented
    env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}
    env |= {"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=filled", "JOURNEYMAN_LOG_FORMAT": "json"}
    resolved = interpolate_all(raw_compose(), env)["services"]
    for role in ROLES:
        settings = settings_of(resolved[role])
        assert (settings.otel_endpoint, settings.log_format) == (
            "http://otel-collector:4318",
            "json",
        ), role
        # Read by the OpenTelemetry SDK itself, not by Settings.
        assert environment(resolved[role])["OTEL_EXPORTER_OTLP_HEADERS"] == "x-api-key=filled"
    # Unset, tracing stays off and logs keep the human format.
    for role in ROLES:
        settings = settings_of(services()[role])
        assert (settings.otel_endpoint, settings.log_format) == (None, "text"), role


def test_workers_serve_their_metrics_inside_the_network() -> None:
    worker = services()["worker"]
    port = settings_of(worker).worker_metrics_port
    assert port is not None, "set JOURNEYMAN_WORKER_METRICS_PORT for Prometheus"
    assert port in exposed_ports(worker), "the worker should `expose` its metrics port"


def test_worker_is_scalable() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker, "a fixed container name prevents scaling"
    assert not worker.get("ports"), "published ports clash between replicas"


def test_images_are_pinned() -> None:
    loose = [
        f"{name}: {svc.get('image')}"
        for name, svc in services().items()
        if "build" not in svc and not is_pinned(str(svc.get("image", "")))
    ]
    stages = {  # `FROM <stage>` reuses an earlier `FROM image AS <stage>`
        words[-1].lower()
        for kw, args in dockerfile_instructions()
        if kw == "FROM" and len(words := args.split()) == 3 and words[1].upper() == "AS"
    }
    loose += [
        f"Dockerfile: {args}"
        for keyword, args in dockerfile_instructions()
        if keyword == "FROM"
        and args.split()[0].lower() not in stages
        and not is_pinned(args.split()[0])
    ]
    assert not loose, f"pin these images to a version tag: {loose}"


# --- The image and the commands -------------------------------------------------------


def test_dockerfile_runs_the_cli_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    entrypoints = [json.loads(args) for kw, args in instructions if kw == "ENTRYPOINT"]
    assert entrypoints[-1:] == [["journeyman"]]
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = script["journeyman"].partition(":")
    assert getattr(importlib.import_module(module), function) is cli.main

    users = [args for kw, args in instructions if kw == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")

    # `api` and `deploy` write credentials.json into the data dir: it must be writable.
    data_dir = dockerfile_env().get(ENVIRONMENT["data_dir"], "")
    assert PurePosixPath(data_dir).is_absolute(), "set an absolute JOURNEYMAN_DATA_DIR"
    owner = re.compile(rf"(-o\s+|--owner[= ]|chown\s+(-\S+\s+)*){re.escape(user)}\b")
    assert any(kw == "RUN" and data_dir in args and owner.search(args) for kw, args in instructions)


def test_compose_commands_are_cli_subcommands() -> None:
    journeyman = journeyman_services()
    assert set(ROLES) <= journeyman.keys(), "api and worker must be built from this repo"
    for name, svc in journeyman.items():
        args = parse_cli(name, cli_argv(name, svc))
        if name in ROLES:
            assert args.command == ROLES[name], f"{name} must run `journeyman {ROLES[name]}`"


def test_journey_deployment_reaches_the_api_with_its_token() -> None:
    found = services()
    api = settings_of(found["api"])
    in_image: dict[PurePosixPath, Path] = {}  # image folder -> repository folder (COPY)
    for keyword, text in dockerfile_instructions():
        parts = text.split()
        if keyword == "COPY" and len(parts) == 2 and not text.startswith("--"):
            in_image[PurePosixPath(parts[1])] = ROOT / parts[0]
    deployers = 0
    for name, svc in journeyman_services().items():
        args = parse_cli(name, cli_argv(name, svc))
        if args.command != "deploy":
            continue
        deployers += 1
        url = urlsplit(args.api)
        assert url.hostname == "api" and url.port == api.api_port, f"{name}: --api {args.api}"
        token, wanted = settings_of(svc).admin_token, api.admin_token
        assert token is not None and wanted is not None, f"{name}: JOURNEYMAN_ADMIN_TOKEN"
        assert token.get_secret_value() == wanted.get_secret_value(), f"{name}: another token"
        for path in args.files:
            pattern = PurePosixPath(path)
            if pattern in in_image:  # a folder: `journeyman deploy` takes its journey files
                matches = sorted(in_image[pattern].glob("*.yaml"))
            else:
                assert pattern.parent in in_image, f"{name}: {pattern.parent} is not in the image"
                matches = sorted(in_image[pattern.parent].glob(pattern.name))
            assert matches, f"{name}: {pattern} matches no journey file in the repository"
    if not deployers:
        pytest.skip("no compose service deploys journeys")


# --- Variables and the build context --------------------------------------------------


def test_interpolated_variables_are_documented_in_example_env() -> None:
    example = read_example_env()
    refs = [ref for text in strings(raw_compose()) for ref in references(text)]
    undocumented = sorted({ref.name for ref in refs if not example.listed(ref.name)})
    assert not undocumented, f"add to deploy/example.env: {undocumented}"
    for ref in refs:
        if ref.op in ("?", ":?"):
            # Required secrets ship empty, so an unedited copy fails instead of running.
            assert example.values.get(ref.name) == "", f"{ref.name} must be empty in example.env"
        elif ref.op in ("-", ":-") and ref.name in example.documented:
            shown = example.documented[ref.name]
            assert shown == ref.arg, f"example.env shows {ref.name}={shown}, compose uses {ref.arg}"


def test_missing_secret_stops_compose_with_its_name() -> None:
    env = operator_env()
    del env["JOURNEYMAN_ADMIN_TOKEN"]
    with pytest.raises(LookupError, match="JOURNEYMAN_ADMIN_TOKEN"):
        interpolate_all(raw_compose(), env)


def test_build_context_keeps_the_sources_and_drops_secrets() -> None:
    patterns = [
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch(path, p) or fnmatch(path, p.removeprefix("**/")) for p in patterns)

    needed = ["pyproject.toml", "journeyman", "orchestrator", "workflows", "channels", "journeys"]
    needed.append(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"])
    assert not [path for path in needed if ignored(path)], "the image build needs these"
    assert ignored(".env") and ignored(".journeyman"), "secrets must stay out of the image"
