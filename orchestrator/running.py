"""What ``journeyman up``, ``worker``, ``api`` and ``demo`` run, until their stop event.

Each installs tracing for its lifetime when a collector is configured (its Temporal clients
then carry the tracing interceptor), and has the credentials it loads masked in its logs.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from . import demo as traffic
from .config import Settings
from .credentials import Credentials, load_or_create
from .customers.segment_files import to_definition, validate_segment_paths
from .language import JourneyError, validate_paths
from .language.folders import SEGMENTS_FOLDER
from .observability import mask_secrets, tracing_for
from .progress import Progress
from .roles import Endpoints, prepare_database, run_api, run_worker
from .stack import embedded_stack
from .storage import connect, deploy_plan
from .storage.segments import deploy_segment
from .temporal_client import temporal_security


async def deploy_directory(database_url: str, journeys_dir: Path) -> list[str]:
    """Deploy every valid journey file whose content changed; report the invalid ones."""
    if not journeys_dir.is_dir():  # noqa: ASYNC240 - one stat at start-up
        print(f"No journeys directory at {journeys_dir}; nothing deployed.")
        return []
    lines = []
    conn = await connect(database_url)
    try:
        # Segments first: journeys enter and exit on them.
        segments_dir = journeys_dir / SEGMENTS_FOLDER
        found = validate_segment_paths([segments_dir]) if segments_dir.is_dir() else []
        for path, spec in found:
            if isinstance(spec, JourneyError):
                print(f"not deployed, invalid:\n{spec}", file=sys.stderr)
                continue
            deployed = await deploy_segment(
                conn,
                definition=to_definition(spec),
                source=path.read_text(encoding="utf-8"),
                details=spec.details(),
            )
            if deployed.outcome != "unchanged":
                lines.append(
                    f"deployed segment {deployed.segment_id} version {deployed.version} ({path})"
                )
        for path, result in validate_paths([journeys_dir]):
            if isinstance(result, JourneyError):
                print(f"not deployed, invalid:\n{result}", file=sys.stderr)
                continue
            outcome = await deploy_plan(conn, plan=result, source=path.read_text(encoding="utf-8"))
            if outcome.activated:
                lines.append(f"deployed {result.journey_id} version {result.version} ({path})")
    finally:
        await conn.close()
    return lines


async def _serve(
    settings: Settings, endpoints: Endpoints, creds: Credentials, stop: asyncio.Event
) -> int:
    """Worker and API side by side; if either fails the other is stopped too."""
    tasks = [
        asyncio.create_task(run_worker(settings, endpoints, stop, creds)),
        asyncio.create_task(run_api(settings, endpoints, creds, stop)),
    ]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        print(f"journeyman: {type(error).__name__}: {error}", file=sys.stderr)
    return 1 if errors else 0


def _banner(settings: Settings, creds: Credentials) -> None:
    print(f"API              http://{settings.api_host}:{settings.api_port}  (GET /healthz)")
    if creds.generated:
        # Shown once, on the terminal only (never logged); also kept in the data dir.
        print(f"Write key        {creds.write_key}")
        print(f"Admin token      {creds.admin_token}")
    else:
        print(f"Credentials      {settings.data_dir / 'credentials.json'}")


def _credentials(settings: Settings) -> Credentials:
    """The process's credentials, masked from now on wherever a log line would show them."""
    creds = load_or_create(settings)
    mask_secrets(creds.write_key, creds.admin_token)
    return creds


async def up(settings: Settings, stop: asyncio.Event, *, deploy: bool = True) -> int:
    creds = _credentials(settings)
    with tracing_for(settings, role="up"):
        return await _up(settings, stop, creds, deploy=deploy)


async def _up(settings: Settings, stop: asyncio.Event, creds: Credentials, *, deploy: bool) -> int:
    async with embedded_stack(settings) as endpoints:
        await prepare_database(endpoints.database_url)
        if deploy:
            for line in await deploy_directory(endpoints.database_url, settings.journeys_dir):
                print(line)
        _banner(settings, creds)
        print("Running. Press Ctrl-C to stop.", flush=True)
        return await _serve(settings, endpoints, creds, stop)


async def worker(settings: Settings, stop: asyncio.Event) -> int:
    endpoints = _external(settings)
    await prepare_database(endpoints.database_url)
    with tracing_for(settings, role="worker"):
        await run_worker(settings, endpoints, stop)
    return 0


async def api(settings: Settings, stop: asyncio.Event) -> int:
    endpoints = _external(settings)
    await prepare_database(endpoints.database_url)
    with tracing_for(settings, role="api"):
        await run_api(settings, endpoints, _credentials(settings), stop)
    return 0


def _external(settings: Settings) -> Endpoints:
    return Endpoints(
        database_url=settings.require_database_url(),
        temporal_address=settings.require_temporal_address(),
        temporal_security=temporal_security(settings),  # a missing file stops start-up here
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
    )


async def demo(settings: Settings, stop: asyncio.Event, *, customers: int, exit_after: bool) -> int:
    """``up``, then replay synthetic traffic through the API and print the live funnel."""
    creds = _credentials(settings)
    with tracing_for(settings, role="demo"):
        return await _demo(settings, stop, creds, customers=customers, exit_after=exit_after)


async def _demo(
    settings: Settings, stop: asyncio.Event, creds: Credentials, *, customers: int, exit_after: bool
) -> int:
    async with embedded_stack(settings) as endpoints:
        await prepare_database(endpoints.database_url)
        for line in await deploy_directory(endpoints.database_url, settings.journeys_dir):
            print(line)
        _banner(settings, creds)
        serving = asyncio.create_task(_serve(settings, endpoints, creds, stop))
        base = f"http://{settings.api_host}:{settings.api_port}"
        try:
            await _replay(base, creds, customers, stop)
            if exit_after:
                stop.set()
            else:
                print("Still running: open the API above. Press Ctrl-C to stop.", flush=True)
        except Exception:
            stop.set()
            await serving
            raise
        return await serving


async def _replay(base: str, creds: Credentials, count: int, stop: asyncio.Event) -> None:
    from .client_commands import format_funnel

    people = traffic.customers(count)
    rounds = traffic.rounds(people)
    admin = {"Authorization": f"Bearer {creds.admin_token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await _wait_healthy(http)
        bar = Progress(sum(len(r) for r in rounds), "Replaying web traffic")
        for k, messages in enumerate(rounds):
            for start in range(0, len(messages), 100):
                chunk = messages[start : start + 100]
                response = await http.post(
                    "/v1/batch", json={"batch": chunk}, auth=(creds.write_key, "")
                )
                response.raise_for_status()
                bar.advance(len(chunk))
            await _settle(http, admin, stop, traffic.funnel_moves(people, after_round=k))
        bar.close()
        funnel = (await http.get("/api/journeys/lifecycle/funnel", headers=admin)).json()
        print(format_funnel(funnel))


async def _wait_healthy(http: httpx.AsyncClient) -> None:
    for _ in range(300):
        try:
            if (await http.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the API did not become healthy")


async def _settle(
    http: httpx.AsyncClient, admin: dict[str, str], stop: asyncio.Event, moves: int
) -> None:
    """Wait until every customer has reacted to the last round (the funnel shows it)."""
    for _ in range(600):
        if stop.is_set():
            return
        funnel = (await http.get("/api/journeys/lifecycle/funnel", headers=admin)).json()
        if sum(s["entered"] + s["converted"] for s in funnel["stages"]) >= moves:
            return
        await asyncio.sleep(0.1)
    print(
        "\nwarning: customers are still catching up; the funnel below is not final",
        file=sys.stderr,
    )
