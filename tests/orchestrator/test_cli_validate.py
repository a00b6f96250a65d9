"""`journeyman validate`: names the file, the place and the problem; exit code says it all."""

from __future__ import annotations

from pathlib import Path

import pytest

from journeyman.orchestrator.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_journeys_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "journeys")]) == 0
    out = capsys.readouterr().out
    assert "lifecycle.yaml: ok (lifecycle version " in out
    assert "abandoned_cart.yaml: ok" in out


def test_errors_name_file_line_and_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text((REPO / "journeys" / "lifecycle.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\nname: Bad\nentry: {event: Signed Up}\nstages:\n"
        "  - name: awareness\n    touchpoints:\n      - wait: 3 fortnights\n"
    )
    assert main(["validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "good.yaml: ok" in captured.out
    assert f"{bad}:7:" in captured.err
    assert "stages[0].touchpoints[0].wait" in captured.err


def test_a_missing_path_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().err


def test_bad_configuration_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYMAN_API_PORT", "not-a-port")
    assert main(["validate", str(REPO / "journeys")]) == 2
    assert "JOURNEYMAN_API_PORT" in capsys.readouterr().err


def test_warnings_are_printed_and_do_not_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text(
        "id: odd\nname: Odd\nentry: {event: Signed Up}\nstages:\n"
        "  - name: only\n    touchpoints:\n      - branch:\n          cases:\n"
        "            - when: profile.shoe_size > 40\n              then:\n"
        "                - send: {subject: Big, body: Hi}\n"
    )
    assert main(["validate", str(odd)]) == 0
    captured = capsys.readouterr()
    assert "odd.yaml: ok" in captured.out
    assert f"{odd}:9:" in captured.err
    assert "warning:" in captured.err and "shoe_size" in captured.err
