"""The report: every figure with its ceiling, ratio, target and verdict; the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report

from .sample import result, scale_point


def tables(markdown: str) -> list[dict[str, list[str]]]:
    """Each table's rows by their first cell (the others as cells), in order."""
    found: list[dict[str, list[str]]] = []
    inside = False
    for line in markdown.splitlines():
        if not line.startswith("| "):
            inside = False
            continue
        if not inside:
            found.append({})
            inside = True
        if not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            found[-1][cells[0]] = cells[1:]
    return found


def rows(markdown: str) -> dict[str, list[str]]:
    """Every table's rows by their first cell (a later table wins on a repeated one)."""
    return {key: cells for table in tables(markdown) for key, cells in table.items()}


def rendered(run: dict[str, Any]) -> str:
    report.add_targets(run)
    return report.markdown(run)


def test_the_machine_and_that_it_is_shared_come_first() -> None:
    lines = rendered(result()).splitlines()
    assert lines[0] == "- Machine: AMD EPYC, 2 CPUs, 23.5 GiB RAM; Linux-x86_64"
    assert "Postgres 18.6 (durable, fsync on)" in lines[1]
    assert "temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)" in lines[1]
    assert lines[2].startswith("- Shared machine: 0.1 cores busy with other work")
    assert "load average 0.50 / 0.70 / 0.90" in lines[2]


def test_the_quiet_each_phase_found_is_reported() -> None:
    run = result()
    run["quiet_before"] = {
        "ingest": {"waited_s": 12.4, "busy_cores": 0.12},
        "bare": {"waited_s": 600.0, "busy_cores": 1.5},
    }
    assert (
        "- Other work on the machine just before each phase, in busy cores: ingest 0.1 (waited"
        " 12 s), bare 1.5 (waited 600 s)." in rendered(run).splitlines()
    )
    assert "Other work on the machine" not in rendered(result())


def test_every_target_has_a_row_with_wanted_measured_and_verdict() -> None:
    table = rows(rendered(result(ingest_eps=4_000, upsert_eps=20_000, reaction_p99=650)))
    assert table["ingest, events/s"] == ["≥ 25,000 events/s", "4,000 events/s", "**FAIL**", ""]
    assert table["ingest / batched-upsert ceiling"][1:3] == ["20 %", "**FAIL**"]
    assert table["reaction, 2xx to message at the provider, p99"][1:3] == ["650.0 ms", "**FAIL**"]
    assert table["reaction, 2xx to message at the provider, p50"][2] == "**PASS**"
    assert table["engine / bare Temporal, journeys/s"][:3] == ["≥ 80 %", "84 %", "**PASS**"]
    assert table["worker RSS with 100,000 customers parked"][:4] == [
        "< 1,024 MiB",
        "420 MiB",
        "**PASS**",
        "at 100,000",
    ]
    assert table["look-up p99, customers in Postgres (largest size)"][1:] == [
        "45.0 ms",
        "**PASS**",
        "at 1,000,000 customers, 10,000,000 events",
    ]


def test_each_figure_stands_next_to_its_ceiling() -> None:
    table = rows(rendered(result(ingest_eps=4_000, upsert_eps=20_000, copy_eps=25_000)))
    each = "(4 connections, 20,000 rows)"
    assert table[f"ceiling: COPY into `events`, 100 rows per transaction {each}"] == ["**25,000**"]
    assert table[
        "ceiling: batched `INSERT ... ON CONFLICT (message_id) DO NOTHING`, 100 rows per"
        f" statement {each}"
    ] == ["**20,000**"]
    assert table[f"ceiling: COPY into `events`, one transaction per connection {each}"] == [
        "150,000"
    ]
    assert table["ingest / batched-upsert ceiling (and / per-batch COPY)"] == ["**20%** (16%)"]
    assert table["engine / bare Temporal"] == ["**84%**"]
    reaction = next(cells for key, cells in table.items() if key.startswith("reaction: `POST"))
    assert reaction == ["**80.0** / 400.0 / **400.0** / 400.0 ms (min 30.0)"]


def test_missing_reaction_messages_get_a_row_of_their_own() -> None:
    key = "reaction: messages not arrived when the bench stopped waiting (counted as arriving then)"
    assert key not in rows(rendered(result()))
    assert rows(rendered(result(missing=7)))[key] == ["**7 of 300**"]


def test_growth_tables_show_each_size() -> None:
    text = rendered(result())
    parked, in_postgres = tables(text)[-2:]
    assert list(parked) == ["parked", "1,000", "10,000", "100,000"]
    assert parked["1,000"][:4] == ["20.0", "0.8 min", "200 (205)", "300"]
    assert parked["100,000"][4:] == ["5.0 / 14.0", "20.0 / 40.0", "50 of 50"]
    assert list(in_postgres) == ["customers", "10,000", "100,000", "1,000,000"]
    assert in_postgres["1,000,000"] == [
        "10,000,000",
        "7,143",
        "51,000",
        "6.0 / 22.0",
        "9.0 / 45.0",
    ]
    assert "Growth with customers parked in a `wait_for`" in text
    assert "Growth with generated customers in Postgres (10 events each" in text


def test_a_size_parking_fell_short_of_shows_how_far_it_got_and_why() -> None:
    why = "its 3,600 s of parking time were up"
    points = [
        scale_point(1_000, 200.0, 12.0, 30.0),
        scale_point(41_234, 380.0, 13.0, 35.0, size=100_000, stopped=why),
    ]
    text = rendered(result(scale=points))
    parked = tables(text)[-2]
    assert list(parked) == ["parked", "1,000", "41,234 of 100,000"]
    assert f"Parking stopped at 41,234 of 100,000 customers: {why};" in text
    assert "Parking stopped" not in rendered(result())


def test_the_cpu_table_has_a_row_per_timed_phase() -> None:
    table = rows(rendered(result()))
    for phase in (
        "ingest",
        "ceiling: COPY per batch",
        "ceiling: batched upsert",
        "ceiling: bulk COPY",
        "bare Temporal",
        "engine journeys",
        "reaction (release window)",
        "scale: parked customers",
        "scale: Postgres",
    ):
        assert phase in table, phase
    assert table["scale: Postgres"][0] == "60.0"
    assert table["scale: Postgres"][2] == "0.5 (1%)"  # postgres CPU seconds, share of a core


def test_a_partial_run_reports_what_it_measured() -> None:
    run = result()
    for key in ("bare", "engine", "reaction", "scale", "pg"):
        del run[key]
    text = rendered(run)
    table = rows(text)
    assert table["reaction, 2xx to message at the provider, p50"][1:3] == ["—", "**NOT MEASURED**"]
    assert "engine / bare Temporal" not in table
    assert "Growth" not in text


def test_the_json_file_holds_the_whole_result(tmp_path: Path) -> None:
    run = result()
    report.add_targets(run)
    path = report.write_json(run, tmp_path / "results")
    assert path.parent == tmp_path / "results" and path.suffix == ".json"
    stored = json.loads(path.read_text())
    assert stored == json.loads(json.dumps(run))
    assert {t["verdict"] for t in stored["targets"]} == {"PASS"}
    assert stored["ceilings"]["upsert"]["events_per_s"] == 50_000
    assert stored["machine"]["postgres"] == "18.6"


def test_a_run_that_stopped_early_says_so_first() -> None:
    run = result()
    run["error"] = "RuntimeError: the worker process has stopped:\nTraceback ..."
    text = rendered(run)
    assert (
        "**The run stopped early** (RuntimeError: the worker process has stopped:);"
        " what it measured before is below." in text.splitlines()
    )
    assert "Traceback" not in text
