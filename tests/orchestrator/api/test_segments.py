"""Segment administration over HTTP: deploy (created, unchanged, changed, restored), list with
member counts, show, archive; and `journeyman deploy` sending segments before journeys."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.client_commands import deploy_files
from journeyman.orchestrator.customers.events import SEGMENT_ENTERED
from journeyman.orchestrator.storage import connect, create_pool
from journeyman.orchestrator.storage.journeys import DEPLOY_CHANNEL
from journeyman.orchestrator.storage.segments import active_segments

from .conftest import ADMIN_TOKEN, WRITE_KEY, Api

VIP = """\
# yaml-language-server: $schema=../../schema/segment.schema.json
id: vip
name: VIP customers
description: Our best customers.
when: metrics.frequency == "vip"
"""
PERSONA = """\
id: gift_buyers
name: Gift buyers
kind: persona
when: 'count("Product Viewed", within: 30d, where: category == "anti-aging") > 0'
goals: [A gift that pleases]
pains: [Does not know the category]
channels: [Live chat]
"""
WELCOME = """\
id: vip_welcome
name: VIP welcome
entry: {segment: vip}
exit: [{leaves_segment: vip}]
stages:
  - name: loyalty
    touchpoints:
      - send: {subject: "Thank you", body: "Hi"}
"""


async def deploy(api: Api, source: str) -> dict[str, object]:
    response = await api.http.post("/api/segments", content=source, headers=api.admin)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def join(api: Api, segment_id: str, *customers: str) -> None:
    await api.pool.executemany(
        "INSERT INTO segment_memberships (segment_id, customer_id) VALUES ($1, $2)",
        [(segment_id, customer) for customer in customers],
    )


async def test_every_segment_route_needs_the_admin_token(api: Api) -> None:
    for method, path in (
        ("GET", "/api/segments"),
        ("POST", "/api/segments"),
        ("GET", "/api/segments/vip"),
        ("POST", "/api/segments/vip/archive"),
    ):
        response = await api.http.request(method, path, headers={"Authorization": "Bearer no"})
        assert response.status_code == 401, path
    assert await api.count("segments") == 0


async def test_deploy_creates_then_is_a_no_op_then_replaces(api: Api) -> None:
    first = await deploy(api, VIP)
    same = await deploy(api, VIP + "# a comment changes nothing\n")
    changed = await deploy(api, VIP.replace('"vip"', '"loyal"'))

    assert first["id"] == "vip" and first["result"] == "created"
    assert same == {**first, "result": "unchanged"}
    assert changed["result"] == "changed" and changed["version"] != first["version"]
    [row] = await api.pool.fetch("SELECT version, definition, source, status FROM segments")
    assert row["version"] == changed["version"] and row["status"] == "active"
    assert row["definition"]["condition"] == 'metrics.frequency == "loyal"'
    assert row["source"] == VIP.replace('"vip"', '"loyal"')
    [definition] = await active_segments(api.pool)
    assert (definition.segment_id, definition.version) == ("vip", changed["version"])


async def test_deploys_are_announced_to_other_processes_unless_nothing_changed(
    api: Api,
) -> None:
    heard: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    listener = await connect(api.services.database_url)
    await listener.add_listener(DEPLOY_CHANNEL, lambda *args: heard.put_nowait(json.loads(args[3])))
    try:
        created = await deploy(api, VIP)
        notice = await asyncio.wait_for(heard.get(), 5)
        assert notice == {"segment_id": "vip", "version": created["version"], "status": "active"}
        await deploy(api, VIP)
        await api.http.post("/api/segments/vip/archive", headers=api.admin)
        notice = await asyncio.wait_for(heard.get(), 5)  # the archive, not the no-op deploy
        assert notice["status"] == "archived"
    finally:
        await listener.close()


async def test_list_and_show_with_member_counts(api: Api) -> None:
    vip = await deploy(api, VIP)
    persona = await deploy(api, PERSONA)
    await join(api, "vip", "c1", "c2", "c3")
    await join(api, "gift_buyers", "c2")

    listed = (await api.http.get("/api/segments", headers=api.admin)).json()
    assert [(s["id"], s["kind"], s["status"], s["members"]) for s in listed] == [
        ("gift_buyers", "persona", "active", 1),
        ("vip", "segment", "active", 3),
    ]
    assert listed[1]["version"] == vip["version"] and listed[1]["name"] == "VIP customers"
    shown = (await api.http.get("/api/segments/gift_buyers", headers=api.admin)).json()
    assert shown["version"] == persona["version"] and shown["members"] == 1
    assert shown["condition"].startswith('count("Product Viewed", within: 30d')
    assert (shown["goals"], shown["pains"], shown["channels"]) == (
        ["A gift that pleases"],
        ["Does not know the category"],
        ["Live chat"],
    )
    plain = (await api.http.get("/api/segments/vip", headers=api.admin)).json()
    assert plain["description"] == "Our best customers." and plain["goals"] == []
    missing = await api.http.get("/api/segments/nope", headers=api.admin)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_archived_segments_stop_counting_until_deployed_again(api: Api) -> None:
    first = await deploy(api, VIP)
    await deploy(api, PERSONA)
    await join(api, "vip", "c1", "c2")
    await join(api, "gift_buyers", "c1")

    archived = await api.http.post("/api/segments/vip/archive", headers=api.admin)
    assert archived.status_code == 200
    assert archived.json() == {"id": "vip", "status": "archived"}
    listed = (await api.http.get("/api/segments", headers=api.admin)).json()
    assert [(s["id"], s["status"], s["members"]) for s in listed] == [
        ("gift_buyers", "active", 1),
        ("vip", "archived", 0),
    ]
    assert [d.segment_id for d in await active_segments(api.pool)] == ["gift_buyers"]
    again = await api.http.post("/api/segments/vip/archive", headers=api.admin)
    assert again.status_code == 200  # archiving twice is harmless

    restored = await deploy(api, VIP)
    assert restored == {**first, "result": "restored"}
    assert [d.segment_id for d in await active_segments(api.pool)] == ["gift_buyers", "vip"]
    # Membership is filled again for the restored definition.
    row = await api.pool.fetchrow(
        "SELECT filled_version, fill_cursor FROM segments WHERE segment_id = 'vip'"
    )
    assert row is not None and (row["filled_version"], row["fill_cursor"]) == (None, None)
    unknown = await api.http.post("/api/segments/nope/archive", headers=api.admin)
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (VIP.replace("when:", "wehn:").encode(), 400, "invalid_segment"),
        (b"id: v\nname: V\nwhen: event.total > 3\n", 400, "invalid_segment"),
        (b"id: v\nname: V\nwhen: '\xff'\n", 400, "invalid_request"),
        (b"id: v\nname: V\nwhen: 'true'\n#" + b"x" * 70_000, 413, "payload_too_large"),
    ],
    ids=["misspelt key", "reads event", "not utf-8", "too large"],
)
async def test_a_bad_segment_is_a_clear_4xx_and_changes_nothing(
    api: Api, body: bytes, status: int, error: str
) -> None:
    response = await api.http.post("/api/segments", content=body, headers=api.admin)

    assert response.status_code == status
    assert response.json()["error"] == error
    assert await api.count("segments") == 0


async def test_an_invalid_segment_names_the_line_of_each_problem(api: Api) -> None:
    source = "id: v\nname: V\nkind: group\nwhen: profile.age >\n"
    response = await api.http.post("/api/segments", content=source, headers=api.admin)

    assert response.status_code == 400
    assert [(f["field"], f["line"]) for f in response.json()["fields"]] == [("kind", 3)]
    source = "id: v\nname: V\nwhen: profile.age >\n"
    response = await api.http.post("/api/segments", content=source, headers=api.admin)
    [field] = response.json()["fields"]
    assert field["field"] == "when" and field["line"] == 3
    assert field["message"].startswith("condition: expected a value")


async def test_a_journey_on_a_deployed_segment_is_routed_its_events(api: Api) -> None:
    await deploy(api, VIP)
    await api.deploy(WELCOME)

    assert api.services.index.journeys_for(SEGMENT_ENTERED) == ["vip_welcome"]


# --- `journeyman deploy` against a real server ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(api: Api) -> Iterator[str]:
    """The API on a real port, in its own thread and event loop, over the `api` database."""
    port = _free_port()
    server: list[uvicorn.Server] = []

    async def serve() -> None:
        pool = await create_pool(api.services.database_url)
        services = Services(
            pool=pool,
            database_url=api.services.database_url,
            write_key=WRITE_KEY,
            admin_token=ADMIN_TOKEN,
            max_body_bytes=64 * 1024,
        )
        config = uvicorn.Config(
            create_app(services, follow_deploys=False),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
        server.append(uvicorn.Server(config))
        try:
            await server[0].serve()
        finally:
            await pool.close()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    while not (server and server[0].started):
        assert thread.is_alive(), "the API did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server[0].should_exit = True
    thread.join(10)


def _folder(tmp_path: Path) -> Path:
    journeys = tmp_path / "journeys"
    (journeys / "segments").mkdir(parents=True)
    (journeys / "segments" / "vip.yaml").write_text(VIP, encoding="utf-8")
    (journeys / "segments" / "gift_buyers.yaml").write_text(PERSONA, encoding="utf-8")
    (journeys / "vip_welcome.yaml").write_text(WELCOME, encoding="utf-8")
    (journeys / "customers.yaml").write_text("recency: {active: 30d}\n", encoding="utf-8")
    return journeys


async def test_deploy_sends_segments_before_journeys_and_skips_configuration(
    api: Api, served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journeys = _folder(tmp_path)

    code = await asyncio.to_thread(deploy_files, served, ADMIN_TOKEN, [journeys])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split(": ")[0] for line in out] == [
        str(journeys / "segments" / "gift_buyers.yaml"),
        str(journeys / "segments" / "vip.yaml"),
        str(journeys / "vip_welcome.yaml"),
    ]
    assert out[1].endswith("created") and "segment vip version " in out[1]
    assert out[2].endswith("activated")
    order = await api.pool.fetch(
        "SELECT 'segment' AS kind, deployed_at AS at FROM segments"
        " UNION ALL SELECT 'journey', deployed_at FROM journey_versions ORDER BY at"
    )
    assert [r["kind"] for r in order] == ["segment", "segment", "journey"]

    (journeys / "segments" / "vip.yaml").write_text(VIP.replace("best", "top"), encoding="utf-8")
    code = await asyncio.to_thread(deploy_files, served, ADMIN_TOKEN, [journeys])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.rsplit(" ", 1)[-1] for line in out] == ["unchanged", "changed", "active"]


async def test_deploy_reports_a_bad_segment_with_its_line_and_goes_on(
    served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journeys = _folder(tmp_path)
    bad = journeys / "segments" / "vip.yaml"
    bad.write_text(VIP + "pains: [x]\n", encoding="utf-8")

    code = await asyncio.to_thread(deploy_files, served, ADMIN_TOKEN, [journeys])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{bad}: segment does not compile" in captured.err
    assert f"  {bad}:6: pains: pains describe a persona" in captured.err
    assert "vip_welcome.yaml: vip_welcome version" in captured.out
