"""What a simulation projects: the funnel, the messages, and how long converting takes.

``Recorder`` collects transitions and sends as the in-memory activities see them, counting
them the way ``storage.runs`` and the delivery ledger do; ``Recorder.report`` turns that into a
``Report``, which prints as text or dumps as JSON.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from journeyman.workflows.inputs import SendStatus, TransitionInput
from journeyman.workflows.plan import Plan, SendStep, walk

# Times come from the test server's clock, which also moves with real time while the worker is
# busy (milliseconds to seconds per step): minutes keep reports equal from run to run.
RESOLUTION_SECONDS = 60

# Which counter a transition adds to on the stage being left, as in ``storage.runs``.
_LEFT: dict[str, str] = {
    "converted": "converted",
    "moved_on": "moved_on",
    "exited": "exited",
    "goal": "goal",
    "migrated": "migrated",
}
RunEnd = Literal["completed", "exited", "goal"]


class Timing(BaseModel):
    """Time from entering the journey; nearest-rank percentiles, in whole minutes."""

    count: int
    median_seconds: int
    p90_seconds: int


class StageResult(BaseModel):
    stage: str
    entered: int
    current: int  # still in the stage when the simulation ended
    converted: int  # reached the stage's goal
    conversion_rate: float  # converted / entered
    moved_on: int  # left without the goal: no goal, or max dwell with "continue"
    exited: int  # left the journey from this stage without converting
    goal: int  # reached the journey's goal while in this stage (the run ends converted)
    time_to_convert: Timing | None  # from entering the journey to converting out of this stage


class StepMessages(BaseModel):
    step: str
    stage: str
    channel: str
    sent: int
    skipped: int  # quiet hours with "skip", or no address
    capped: int  # a frequency cap was reached
    deferred: int  # times a send waited for quiet hours or the throttle (then went on)


class GoalResult(BaseModel):
    event: str
    reached: int
    rate: float  # reached / customers
    time_to_goal: Timing | None


class RunOutcomes(BaseModel):
    completed: int  # went through the last stage
    goal: int  # reached the journey's goal
    exited: int  # left the journey early
    active: int  # still inside when the simulation ended
    held_out: int  # in the holdout group: counted, never messaged


class Report(BaseModel):
    journey_id: str
    journey_name: str
    version: str
    customers: int
    seed: int
    scenario: str | None  # the scenario file; None: nobody reacts
    started_at: datetime  # simulated time of the first entry
    horizon_seconds: int  # how far the simulation ran at most
    stages: list[StageResult]
    runs: RunOutcomes
    goal: GoalResult | None
    messages: dict[str, int]  # channel -> messages sent
    steps: list[StepMessages]


class Recorder:
    """Counts what the simulated activities see, per stage, per step and per customer."""

    def __init__(
        self,
        plan: Plan,
        *,
        on_finished: Callable[[str], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.plan = plan
        self._on_finished = on_finished
        self._on_failure = on_failure
        self.failure: str | None = None  # the first simulated activity that failed, and why
        self._seen: set[tuple[str, int]] = set()
        self.kpis: dict[str, Counter[str]] = {stage.name: Counter() for stage in plan.stages}
        self._entered_at: dict[str, datetime] = {}
        self._to_convert: dict[str, list[float]] = {stage.name: [] for stage in plan.stages}
        self._to_goal: list[float] = []
        self.ends: dict[str, RunEnd] = {}
        self.held_out: set[str] = set()
        self._sends: dict[str, Counter[str]] = {}
        # The horizon: once the clock there closes, the test server skips on to the next
        # timer before the workers stop, so anything after it is not part of the report.
        self.until: datetime | None = None

    @property
    def finished(self) -> int:
        return len(self.ends)

    def fail(self, message: str) -> None:
        """A simulated activity failed: a bug, which ends the simulation with an error."""
        if self.failure is None:
            self.failure = message
            if self._on_failure is not None:
                self._on_failure()

    def transition(self, input: TransitionInput, at: datetime) -> bool:
        """Record a transition once; False when (run key, seq) was already recorded."""
        if self.until is not None and at > self.until:
            return False
        key = (input.run_key, input.seq)
        if key in self._seen:
            return False
        self._seen.add(key)
        customer = input.customer_id
        if input.outcome == "entered":
            self._entered_at[customer] = at
            if input.holdout:
                self.held_out.add(customer)
        if input.from_stage is not None and input.outcome in _LEFT:
            self.kpis[input.from_stage][_LEFT[input.outcome]] += 1
            since = (at - self._entered_at[customer]).total_seconds()
            if input.outcome == "converted":
                self._to_convert[input.from_stage].append(since)
            elif input.outcome == "goal":
                self._to_goal.append(since)
        if input.to_stage is not None:
            self.kpis[input.to_stage]["entered"] += 1
        else:
            end: RunEnd = (
                "exited"
                if input.outcome == "exited"
                else "goal"
                if input.outcome == "goal"
                else "completed"
            )
            self.ends[customer] = end
            if self._on_finished is not None:
                self._on_finished(customer)
        return True

    def send(self, step_id: str, status: SendStatus | Literal["deferred"]) -> None:
        self._sends.setdefault(step_id, Counter())[status] += 1

    def report(
        self,
        *,
        customers: int,
        seed: int,
        scenario: str | None,
        started_at: datetime,
        horizon_seconds: int,
    ) -> Report:
        plan = self.plan
        stages = []
        for stage in plan.stages:
            kpi = self.kpis[stage.name]
            entered, converted = kpi["entered"], kpi["converted"]
            left = converted + kpi["moved_on"] + kpi["exited"] + kpi["goal"] + kpi["migrated"]
            stages.append(
                StageResult(
                    stage=stage.name,
                    entered=entered,
                    current=entered - left,
                    converted=converted,
                    conversion_rate=round(converted / entered, 4) if entered else 0.0,
                    moved_on=kpi["moved_on"],
                    exited=kpi["exited"],
                    goal=kpi["goal"],
                    time_to_convert=timing(self._to_convert[stage.name]),
                )
            )
        ends = Counter(self.ends.values())
        goal = None
        if plan.goal is not None:
            goal = GoalResult(
                event=plan.goal.match.event,
                reached=ends["goal"],
                rate=round(ends["goal"] / customers, 4) if customers else 0.0,
                time_to_goal=timing(self._to_goal),
            )
        steps: list[StepMessages] = []
        messages: Counter[str] = Counter()
        for stage in plan.stages:
            for step in walk(stage.steps):
                if not isinstance(step, SendStep):
                    continue
                counts = self._sends.get(step.id, Counter())
                messages[step.channel] += counts["sent"]
                steps.append(
                    StepMessages(
                        step=step.id,
                        stage=stage.name,
                        channel=step.channel,
                        sent=counts["sent"],
                        skipped=counts["skipped"],
                        capped=counts["capped"],
                        deferred=counts["deferred"],
                    )
                )
        return Report(
            journey_id=plan.journey_id,
            journey_name=plan.name,
            version=plan.version,
            customers=customers,
            seed=seed,
            scenario=scenario,
            started_at=started_at,
            horizon_seconds=horizon_seconds,
            stages=stages,
            runs=RunOutcomes(
                completed=ends["completed"],
                goal=ends["goal"],
                exited=ends["exited"],
                active=customers - len(self.ends),
                held_out=len(self.held_out),
            ),
            goal=goal,
            messages=dict(messages),
            steps=steps,
        )


def timing(durations: Sequence[float]) -> Timing | None:
    if not durations:
        return None
    ordered = sorted(_rounded(seconds) for seconds in durations)
    return Timing(
        count=len(ordered),
        median_seconds=_rank(ordered, 0.5),
        p90_seconds=_rank(ordered, 0.9),
    )


def _rounded(seconds: float) -> int:
    return round(seconds / RESOLUTION_SECONDS) * RESOLUTION_SECONDS


def _rank(ordered: Sequence[int], share: float) -> int:
    # Nearest rank: always one of the measured values, never an interpolation between two.
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


# --- text ------------------------------------------------------------------------------


def format_duration(seconds: int) -> str:
    """The two largest units, minutes at least: ``1d 4h``, ``3h 12m``, ``45m``."""
    minutes = seconds // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m"]
    shown = [part for part in parts if part and part != "0m"] or ["0m"]
    return " ".join(shown[:2])


def format_report(report: Report) -> str:
    scenario = report.scenario or "none (nobody reacts)"
    lines = [
        f"Simulated {report.journey_name} ({report.journey_id} version {report.version})",
        f"{report.customers} customers, seed {report.seed}, scenario {scenario}",
        f"from {report.started_at:%Y-%m-%d %H:%M} UTC for at most"
        f" {format_duration(report.horizon_seconds)}",
        "",
    ]
    with_goal = report.goal is not None
    header = (
        f"{'stage':<16}{'entered':>8}{'now':>6}{'converted':>10}{'rate':>8}"
        f"{'moved on':>9}{'exited':>7}{'goal' if with_goal else '':>6}"
        f"  {'to convert: median':>18}{'p90':>9}"
    )
    lines += [header, "-" * len(header)]
    for s in report.stages:
        median, p90 = _times(s.time_to_convert)
        goal = str(s.goal) if with_goal else ""
        lines.append(
            f"{s.stage:<16}{s.entered:>8}{s.current:>6}{s.converted:>10}"
            f"{s.conversion_rate:>8.1%}{s.moved_on:>9}{s.exited:>7}{goal:>6}"
            f"  {median:>18}{p90:>9}"
        )
    runs = report.runs
    reached = f" {runs.goal} reached the goal," if with_goal else ""
    lines += [
        "",
        f"runs: {runs.completed} completed, {runs.exited} exited,{reached}"
        f" {runs.active} still inside at the end, {runs.held_out} held out",
    ]
    if report.goal is not None:
        median, p90 = _times(report.goal.time_to_goal)
        lines.append(
            f"journey goal ({report.goal.event}): {report.goal.reached} ({report.goal.rate:.1%}),"
            f" time to goal median {median}, p90 {p90}"
        )
    lines += ["", "messages sent: " + _channels(report.messages)]
    if report.steps:
        header = (
            f"{'step':<24}{'stage':<16}{'channel':<9}{'sent':>7}{'skipped':>9}"
            f"{'capped':>8}{'deferred':>10}"
        )
        lines += [header, "-" * len(header)]
        for m in report.steps:
            lines.append(
                f"{m.step:<24}{m.stage:<16}{m.channel:<9}{m.sent:>7}{m.skipped:>9}"
                f"{m.capped:>8}{m.deferred:>10}"
            )
    return "\n".join(lines)


def _times(found: Timing | None) -> tuple[str, str]:
    if found is None:
        return "-", "-"
    return format_duration(found.median_seconds), format_duration(found.p90_seconds)


def _channels(messages: dict[str, int]) -> str:
    if not messages:
        return "none"
    return ", ".join(f"{count} {channel}" for channel, count in sorted(messages.items()))
