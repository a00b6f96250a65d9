"""Readings from /proc and from the sink child: resident memory and mail arrival times."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.cpu import wait_for_quiet
from bench.mailbox import Mail, parse_line
from bench.memory import available_mib, parse_status, rss

STATUS = """Name:\tpython
VmPeak:\t 1200000 kB
VmHWM:\t  307200 kB
VmRSS:\t  204800 kB
Threads:\t12
"""


def test_rss_now_and_peak_come_from_the_status_file() -> None:
    found = parse_status(STATUS)
    assert (found.now_mib, found.peak_mib) == (200.0, 300.0)
    with pytest.raises(ValueError, match="no VmRSS"):
        parse_status("Name:\tkthreadd\n")


def test_available_memory_comes_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684288 kB\nMemAvailable:    3145728 kB\n")
    assert available_mib(meminfo) == 3072.0
    meminfo.write_text("MemTotal:       24684288 kB\n")
    assert available_mib(meminfo) is None  # a kernel too old to say
    assert available_mib(tmp_path / "absent") is None
    machine = available_mib()
    assert machine is not None and 0 < machine < 64 * 1024 * 1024


def test_rss_of_this_process_is_plausible() -> None:
    found = rss(os.getpid())
    assert 10 < found.now_mib <= found.peak_mib < 64 * 1024


def test_a_sink_line_gives_recipient_subject_and_arrival() -> None:
    line = "c-0000001@example.com\tReleased, Customer1\t1764144000.123456\n"
    assert parse_line(line) == Mail(
        "c-0000001@example.com", "Released, Customer1", 1764144000.123456
    )
    # A tab inside the subject stays in the subject: the arrival is the last field.
    assert parse_line("a@b\tx\ty\t1.5\n").subject == "x\ty"


async def test_waiting_for_a_quiet_machine_gives_up_at_its_limit() -> None:
    # The stretch of quiet wanted (5 s) is longer than the limit: it always ends at the limit.
    waited, busy = await wait_for_quiet(1.5)
    assert 1.5 <= waited < 4
    assert 0 <= busy <= (os.cpu_count() or 1) + 0.5
