"""Validating many journey files at once: directories, missing paths, files and ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from journeyman.orchestrator.language import JourneyError, compile_file, validate_paths
from journeyman.workflows.plan import Plan

GOOD = """\
id: welcome
name: Welcome
entry: {event: Signed Up}
stages:
  - name: awareness
    goal: {event: Product Viewed}
"""

BAD = """\
id: broken
name: Broken
entry: {event: Signed Up}
stages:
  - name: awareness
    touchpoints:
      - wait: soon
"""


def test_directory_yields_each_journey_file_sorted_with_plan_or_error(tmp_path: Path) -> None:
    (tmp_path / "b_bad.yml").write_text(BAD)
    (tmp_path / "a_good.yaml").write_text(GOOD)
    (tmp_path / "notes.txt").write_text("not a journey")
    (tmp_path / ".#a_good.yaml").write_text("editor lock file")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "c.yaml").write_text(GOOD)

    results = validate_paths([tmp_path])

    assert [path.name for path, _ in results] == ["a_good.yaml", "b_bad.yml"]
    good, bad = (outcome for _, outcome in results)
    assert isinstance(good, Plan)
    assert good.journey_id == "welcome"
    assert isinstance(bad, JourneyError)
    assert [str(d) for d in bad.diagnostics] == [
        f"{tmp_path / 'b_bad.yml'}:7:15: stages[0].touchpoints[0].wait: a duration is whole "
        "seconds or text like 90s, 15m, 2h, 3d, 1w or 1d12h, got 'soon'"
    ]


def test_missing_path_is_an_error_and_the_others_are_still_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    missing = tmp_path / "gone.yaml"

    results = validate_paths([missing, good])

    assert [path for path, _ in results] == [missing, good]
    error = results[0][1]
    assert isinstance(error, JourneyError)
    assert str(error) == f"{missing}: no such file or directory"
    assert isinstance(results[1][1], Plan)


def test_a_file_named_twice_is_compiled_once(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)

    results = validate_paths([tmp_path, good])

    assert [path for path, _ in results] == [good]


def test_two_files_with_one_journey_id_cannot_both_deploy(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("name: Welcome", "name: Copy"))

    (_, first), (_, second) = validate_paths([tmp_path])

    assert isinstance(first, Plan)
    assert isinstance(second, JourneyError)
    assert str(second) == (
        f"{tmp_path / 'b.yaml'}: id: journey id 'welcome' is already used by {tmp_path / 'a.yaml'}"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file or directory"), (b"id: \xff\xfe\n", "the file is not valid UTF-8")],
)
def test_compile_file_reports_unreadable_files(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "j.yaml"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(JourneyError) as caught:
        compile_file(path)
    assert str(caught.value) == f"{path}: {message}"


def test_compile_file_names_the_file_in_diagnostics(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)

    with pytest.raises(JourneyError) as caught:
        compile_file(path)
    assert caught.value.diagnostics[0].file == str(path)
    assert caught.value.diagnostics[0].line == 7
