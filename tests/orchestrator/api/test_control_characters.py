"""A journey or segment file holding a control character is a located 400 that stores nothing.

YAML forbids control characters (other than tab and line breaks) unescaped; PyYAML's reader
refuses them before parsing, and that refusal must read like any other syntax error.
"""

from __future__ import annotations

import pytest

from .conftest import LIFECYCLE, Api

SEGMENT = 'id: vip\nname: VIP customers\nwhen: metrics.frequency == "vip"\n'
CHARACTERS = ["\x00", "\x07", "\x1b", "\x7f", "\ufffe"]


def _with(source: str, char: str, *, after: str) -> tuple[str, int]:
    """``source`` with ``char`` inserted just after ``after``; the 1-based line it is on."""
    at = source.index(after) + len(after)
    return source[:at] + char + source[at:], source.count("\n", 0, at) + 1


@pytest.mark.parametrize("char", CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
async def test_a_journey_file_with_a_control_character_is_a_located_400(
    api: Api, char: str
) -> None:
    source, line = _with(LIFECYCLE, char, after="name: Life")

    response = await api.http.post("/api/journeys", content=source, headers=api.admin)

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_journey"
    [field] = body["fields"]
    assert field["line"] == line
    assert f"U+{ord(char):04X} is not allowed" in field["message"]
    assert await api.count("journey_versions") == 0
    listed = await api.http.get("/api/journeys", headers=api.admin)
    assert listed.json() == []


@pytest.mark.parametrize("char", ["\x00", "\x1b"], ids=["U+0000", "U+001B"])
async def test_a_segment_file_with_a_control_character_is_a_located_400(
    api: Api, char: str
) -> None:
    source, line = _with(SEGMENT, char, after="name: VIP")

    response = await api.http.post("/api/segments", content=source, headers=api.admin)

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_segment"
    assert [f["line"] for f in body["fields"]] == [line]
    assert await api.count("segments") == 0


async def test_the_same_file_without_the_character_deploys(api: Api) -> None:
    refused = await api.http.post(
        "/api/journeys", content=LIFECYCLE.replace("Lifecycle", "Life\x07cycle"), headers=api.admin
    )
    assert refused.status_code == 400
    await api.deploy(LIFECYCLE)
    assert await api.count("journey_versions") == 1
