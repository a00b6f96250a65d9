"""Secured Temporal clusters: TLS with a private CA, mTLS, a server name, an API key.

A TLS-terminating proxy (``tls_proxy``) stands in front of the real Temporal dev server, so
clients go through a real handshake: with the right CA they connect, without it they fail
with an error that names the setting to fix. ``journeyman api`` and ``journeyman worker``
are run as processes with the settings in their environment, as an operator would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from journeyman.orchestrator.config import ConfigError, Settings
from journeyman.orchestrator.embedded.temporal import TemporalDevServer
from journeyman.orchestrator.temporal_client import (
    TemporalConnectError,
    TemporalSecurity,
    connect_temporal,
    temporal_security,
)

from .tls_proxy import Authority, Issued, TlsProxy

REPO = Path(__file__).resolve().parents[2]
API_KEY = "tk_cloud_api_key_5f2c81d0"
SERVER_NAME = "temporal.internal"


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1, one for a name only, and a client's."""

    authority: Authority
    server: Issued
    named_server: Issued
    client: Issued
    stranger: Issued  # a client certificate from another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    authority = Authority(folder)
    other = Authority(folder, common_name="Another CA")
    return Pki(
        authority=authority,
        server=authority.issue("server", dns=["localhost"], ips=["127.0.0.1"], client=False),
        named_server=authority.issue("named", dns=[SERVER_NAME], ips=[], client=False),
        client=authority.issue("worker", dns=["worker"], ips=[], client=True),
        stranger=other.issue("stranger", dns=["stranger"], ips=[], client=True),
    )


@pytest.fixture
async def tls_front(temporal_dev_server: TemporalDevServer, pki: Pki) -> AsyncIterator[str]:
    """TLS (server certificate only) in front of the dev server."""
    async with TlsProxy(temporal_dev_server.address, pki.server).running() as address:
        yield address


@pytest.fixture
async def mtls_front(
    temporal_dev_server: TemporalDevServer, pki: Pki
) -> AsyncIterator[tuple[str, TlsProxy]]:
    """TLS that requires a client certificate signed by the CA."""
    proxy = TlsProxy(temporal_dev_server.address, pki.server, client_ca_file=pki.authority.ca_file)
    async with proxy.running() as address:
        yield address, proxy


def security(**env: str | Path) -> TemporalSecurity:
    """What a process given these ``JOURNEYMAN_TEMPORAL_*`` variables connects with."""
    values = {f"JOURNEYMAN_TEMPORAL_{name.upper()}": str(v) for name, v in env.items()}
    return temporal_security(Settings.from_env(values))


# --- connecting through TLS -------------------------------------------------------------


async def test_a_client_trusting_the_ca_connects_over_tls(tls_front: str, pki: Pki) -> None:
    client = await connect_temporal(tls_front, security=security(tls_ca_file=pki.authority.ca_file))
    await client.service_client.check_health()
    assert (await client.count_workflows()).count >= 0


async def test_a_client_without_the_ca_fails_and_names_the_setting(tls_front: str) -> None:
    with pytest.raises(TemporalConnectError) as caught:
        await connect_temporal(tls_front, security=security(tls="true"))
    message = str(caught.value)
    assert tls_front in message and "over TLS" in message
    assert "not signed by a CA this process trusts" in message
    assert "JOURNEYMAN_TEMPORAL_TLS_CA_FILE" in message


async def test_a_plaintext_client_is_told_to_turn_tls_on(tls_front: str) -> None:
    with pytest.raises(TemporalConnectError, match="set JOURNEYMAN_TEMPORAL_TLS=true"):
        await connect_temporal(tls_front)


async def test_the_server_name_setting_verifies_a_certificate_for_another_name(
    temporal_dev_server: TemporalDevServer, pki: Pki
) -> None:
    # The certificate names temporal.internal only, and the client dials 127.0.0.1.
    async with TlsProxy(temporal_dev_server.address, pki.named_server).running() as address:
        with pytest.raises(TemporalConnectError, match="JOURNEYMAN_TEMPORAL_TLS_SERVER_NAME"):
            await connect_temporal(address, security=security(tls_ca_file=pki.authority.ca_file))
        client = await connect_temporal(
            address,
            security=security(tls_ca_file=pki.authority.ca_file, tls_server_name=SERVER_NAME),
        )
        await client.service_client.check_health()


async def test_mtls_connects_with_the_client_certificate(
    mtls_front: tuple[str, TlsProxy], pki: Pki
) -> None:
    address, proxy = mtls_front
    client = await connect_temporal(
        address,
        security=security(
            tls_ca_file=pki.authority.ca_file,
            tls_cert_file=pki.client.cert_file,
            tls_key_file=pki.client.key_file,
        ),
    )
    await client.service_client.check_health()
    assert proxy.connections >= 1


@pytest.mark.parametrize("certificate", ["none", "another CA's"])
async def test_mtls_refuses_a_client_without_a_certificate_it_trusts(
    mtls_front: tuple[str, TlsProxy], pki: Pki, certificate: str
) -> None:
    address, _ = mtls_front
    env: dict[str, str | Path] = {"tls_ca_file": pki.authority.ca_file}
    if certificate != "none":
        env |= {"tls_cert_file": pki.stranger.cert_file, "tls_key_file": pki.stranger.key_file}
    with pytest.raises(TemporalConnectError, match="cannot connect to Temporal") as caught:
        await connect_temporal(address, security=security(**env))
    if certificate == "none":
        assert "JOURNEYMAN_TEMPORAL_TLS_CERT_FILE" in str(caught.value)


async def test_an_api_key_turns_tls_on_and_is_sent_with_the_client(
    tls_front: str, pki: Pki
) -> None:
    # The dev server checks no key; what is checked is that the key rides on this client,
    # over TLS (Temporal Cloud refuses keys in plaintext), and never shows in a repr.
    chosen = security(api_key=API_KEY, tls_ca_file=pki.authority.ca_file)
    client = await connect_temporal(tls_front, security=chosen)
    await client.service_client.check_health()
    assert client.api_key == API_KEY
    assert security(api_key=API_KEY).tls is True  # the system's roots, as for Temporal Cloud
    assert API_KEY not in repr(chosen)
    assert "PRIVATE KEY" not in repr(
        security(
            tls_ca_file=pki.authority.ca_file,
            tls_cert_file=pki.client.cert_file,
            tls_key_file=pki.client.key_file,
        )
    )
    settings = Settings.from_env({"JOURNEYMAN_TEMPORAL_API_KEY": API_KEY})
    assert API_KEY in settings.secret_values()  # masked in every log line
    assert API_KEY not in repr(settings)


async def test_without_settings_the_connection_stays_plaintext(
    temporal_dev_server: TemporalDevServer,
) -> None:
    plain = security()
    assert plain.tls is False and plain.api_key is None
    client = await connect_temporal(temporal_dev_server.address, security=plain)
    await client.service_client.check_health()


# --- settings that cannot work stop start-up --------------------------------------------


KEY, CERT = "JOURNEYMAN_TEMPORAL_TLS_KEY_FILE", "JOURNEYMAN_TEMPORAL_TLS_CERT_FILE"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({KEY: "/etc/client.key"}, f"{KEY} is set but {CERT} is not"),
        ({CERT: "/etc/client.pem"}, f"{CERT} is set but {KEY} is not"),
        (
            {"JOURNEYMAN_TEMPORAL_TLS": "false", "JOURNEYMAN_TEMPORAL_TLS_CA_FILE": "/etc/ca.pem"},
            "JOURNEYMAN_TEMPORAL_TLS is false, yet TLS settings are set "
            "(JOURNEYMAN_TEMPORAL_TLS_CA_FILE)",
        ),
        (
            {"JOURNEYMAN_TEMPORAL_TLS_SERVER_NAME": "https://temporal.internal:7233"},
            "must be a host name",
        ),
        ({"JOURNEYMAN_TEMPORAL_TLS": "perhaps"}, "JOURNEYMAN_TEMPORAL_TLS: "),
    ],
    ids=["key without cert", "cert without key", "tls off with a CA", "server name", "not bool"],
)
def test_inconsistent_tls_settings_are_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert says in str(caught.value)
    assert next(iter(env)) in str(caught.value)


def test_a_missing_or_wrong_file_names_its_variable(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConfigError) as caught:
        security(tls_ca_file=missing)
    assert f"JOURNEYMAN_TEMPORAL_TLS_CA_FILE: cannot read {missing}" in str(caught.value)
    with pytest.raises(ConfigError, match=r"JOURNEYMAN_TEMPORAL_TLS_KEY_FILE: .* not a PEM file"):
        # The certificate given twice: the key file holds no private key.
        security(tls_cert_file=pki.client.cert_file, tls_key_file=pki.client.cert_file)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"JOURNEYMAN_TEMPORAL_TLS_CA_FILE: .* not a PEM file"):
        security(tls_ca_file=garbage)


# --- the processes use them -------------------------------------------------------------


def _environment(database_url: str, address: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    journeys = tmp_path / "journeys"
    journeys.mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")},
        "JOURNEYMAN_DATA_DIR": str(tmp_path / "data"),
        "JOURNEYMAN_JOURNEYS_DIR": str(journeys),
        "JOURNEYMAN_DATABASE_URL": database_url,
        "JOURNEYMAN_TEMPORAL_ADDRESS": address,
        "JOURNEYMAN_LOG_LEVEL": "WARNING",
        **extra,
    }


@pytest.fixture
def processes() -> Iterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.kill()


async def _start(
    env: dict[str, str], role: str, started: list[asyncio.subprocess.Process]
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "journeyman.orchestrator.cli",
        role,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    started.append(process)
    return process


async def _stop(process: asyncio.subprocess.Process) -> str:
    """Stop it as an orchestrator would; what it wrote on stderr."""
    if process.returncode is None:
        process.terminate()
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    return stderr.decode(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_journeyman_api_reaches_temporal_over_mtls(
    mtls_front: tuple[str, TlsProxy],
    pki: Pki,
    database_url: str,
    tmp_path: Path,
    processes: list[asyncio.subprocess.Process],
) -> None:
    address, proxy = mtls_front
    port = _free_port()
    env = _environment(
        database_url,
        address,
        tmp_path,
        JOURNEYMAN_API_PORT=str(port),
        JOURNEYMAN_WRITE_KEY="wk_tls",
        JOURNEYMAN_ADMIN_TOKEN="adm_tls",
        JOURNEYMAN_TEMPORAL_TLS_CA_FILE=str(pki.authority.ca_file),
        JOURNEYMAN_TEMPORAL_TLS_CERT_FILE=str(pki.client.cert_file),
        JOURNEYMAN_TEMPORAL_TLS_KEY_FILE=str(pki.client.key_file),
        JOURNEYMAN_TEMPORAL_API_KEY=API_KEY,
    )
    api = await _start(env, "api", processes)
    health: dict[str, object] = {}
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        while time.monotonic() < deadline and api.returncode is None:
            try:
                response = await http.get("/healthz")
                health = response.json()
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    stderr = await _stop(api)
    assert health.get("dependencies") == {"postgres": "ok", "temporal": "ok"}, stderr
    assert proxy.connections >= 1
    assert API_KEY not in stderr


async def test_journeyman_worker_polls_its_queue_over_mtls(
    mtls_front: tuple[str, TlsProxy],
    pki: Pki,
    database_url: str,
    tmp_path: Path,
    temporal_dev_server: TemporalDevServer,
    processes: list[asyncio.subprocess.Process],
) -> None:
    address, proxy = mtls_front
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    env = _environment(
        database_url,
        address,
        tmp_path,
        JOURNEYMAN_TASK_QUEUE=queue,
        JOURNEYMAN_SMTP_HOST="127.0.0.1",
        JOURNEYMAN_TEMPORAL_TLS_CA_FILE=str(pki.authority.ca_file),
        JOURNEYMAN_TEMPORAL_TLS_CERT_FILE=str(pki.client.cert_file),
        JOURNEYMAN_TEMPORAL_TLS_KEY_FILE=str(pki.client.key_file),
    )
    worker = await _start(env, "worker", processes)
    direct = await connect_temporal(temporal_dev_server.address)
    request = DescribeTaskQueueRequest(namespace=direct.namespace, task_queue=TaskQueue(name=queue))
    pollers = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.returncode is None and not pollers:
        pollers = len((await direct.workflow_service.describe_task_queue(request)).pollers)
        await asyncio.sleep(0.3)
    stderr = await _stop(worker)
    assert pollers >= 1, stderr
    assert proxy.connections >= 1


@pytest.mark.parametrize("role", ["api", "worker"])
async def test_a_missing_certificate_file_stops_the_process_at_start(
    role: str,
    database_url: str,
    tmp_path: Path,
    processes: list[asyncio.subprocess.Process],
) -> None:
    missing = tmp_path / "absent-ca.pem"
    env = _environment(
        database_url,
        "127.0.0.1:7233",
        tmp_path,
        JOURNEYMAN_SMTP_HOST="127.0.0.1",
        JOURNEYMAN_WRITE_KEY="wk_tls",
        JOURNEYMAN_ADMIN_TOKEN="adm_tls",
        JOURNEYMAN_TEMPORAL_TLS_CA_FILE=str(missing),
        JOURNEYMAN_TEMPORAL_API_KEY=API_KEY,
    )
    process = await _start(env, role, processes)
    _, output = await asyncio.wait_for(process.communicate(), 60)
    stderr = output.decode(errors="replace")
    assert process.returncode == 2, stderr
    assert f"JOURNEYMAN_TEMPORAL_TLS_CA_FILE: cannot read {missing}" in stderr
    assert API_KEY not in stderr
