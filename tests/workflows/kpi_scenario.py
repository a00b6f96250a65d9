"""A scripted population for the KPI accounting tests, and what every report should say.

The journey (``JOURNEY``) has three stages with goals, a delay, a ``wait_for`` with a timeout,
email and SMS sends, dwell limits (one that moves on, two that exit), a journey goal, an exit
event, a 20 % holdout and re-entry. Each ``Path`` is written by hand: the events a customer
sends and when (hours after the scenario starts), and, from the journey's rules, the stage
visits and messages that must follow. ``Ledger`` adds the paths up into the numbers of the
funnel, exits, touchpoints, stage timing, cohorts and holdout reports. Nothing here reads the
engine's tables: the ledger is the independent count the engine's reports are checked against.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

JOURNEY: Final = """
id: {jid}
name: KPI accounting
entry:
  event: Signed Up
  reentry: {{after: 1s}}
  holdout: 20%
goal: {{event: Order Completed, within: 30d}}
exit:
  - {{event: Account Closed}}
stages:
  - name: awareness
    goal: {{event: Product Viewed}}
    max_dwell: 3d
    on_max_dwell: continue
    touchpoints:
      - {{id: settle-in, wait: 1d}}
      - send: {{id: welcome, subject: "Welcome to the shop", body: "Have a look around."}}
  - name: consideration
    goal: {{event: Cart Started}}
    max_dwell: 3d
    on_max_dwell: exit
    touchpoints:
      - send: {{id: offer, channel: sms, body: "Ten percent off this week."}}
      - id: await-reply
        wait_for:
          event: Offer Replied
          timeout: 1d
          on_timeout:
            - send: {{id: reminder, subject: "Your offer is waiting", body: "Still yours."}}
  - name: purchase
    goal: {{event: Payment Entered}}
    max_dwell: 2d
    on_max_dwell: exit
    touchpoints:
      - send: {{id: checkout-help, subject: "Need help at checkout?", body: "Reply to us."}}
"""

AWARENESS, CONSIDERATION, PURCHASE = "awareness", "consideration", "purchase"
STAGES: Final = (AWARENESS, CONSIDERATION, PURCHASE)
# The send steps in the order of the journey file: (step, stage, channel, subject or body).
SENDS: Final = (
    ("welcome", AWARENESS, "email", "Welcome to the shop"),
    ("offer", CONSIDERATION, "sms", "Ten percent off this week."),
    ("reminder", CONSIDERATION, "email", "Your offer is waiting"),
    ("checkout-help", PURCHASE, "email", "Need help at checkout?"),
)
# The timers a stage starts when a visit begins, in hours: the delay or the wait_for timeout,
# and the max dwell. An event scripted within an hour of an active timer would race it.
TIMERS: Final = {AWARENESS: (24, 72), CONSIDERATION: (24, 72), PURCHASE: (48,)}
# After the last timer of every path (the longest is 72 h + 72 h): every run has ended.
END_HOURS: Final = 150.0

SIGNED_UP, ORDERED, CLOSED = "Signed Up", "Order Completed", "Account Closed"
VIEWED, CARTED, PAID, REPLIED = "Product Viewed", "Cart Started", "Payment Entered", "Offer Replied"

# Leaving a stage: the funnel's columns, and the order of the exits report (docs/reports.md).
LEAVING: Final = ("moved_on", "exited", "migrated")
REASONS: Final = (
    "timeout",
    "exit_rule",
    "exit_step",
    "erasure",
    "merge",
    "archived",
    "no_goal",
    "goto",
    "migration",
    "unknown",
)


@dataclass(frozen=True)
class Visit:
    """A stay in a stage, from ``start`` to ``end`` hours; how it ended and why."""

    stage: str
    start: float
    end: float
    outcome: str  # converted (the stage's goal), goal (the journey's), moved_on, exited
    reason: str | None = None
    detail: str | None = None

    @property
    def converting(self) -> bool:
        return self.outcome in ("converted", "goal")

    @property
    def timers(self) -> list[float]:
        """The stage's timers that were running during the visit."""
        return [self.start + t for t in TIMERS[self.stage] if self.start + t <= self.end]


@dataclass(frozen=True)
class PlannedRun:
    """One run: its visits in order and what a treated customer is sent, ``(step, hour)``."""

    visits: tuple[Visit, ...]
    messages: tuple[tuple[str, float], ...] = ()

    @property
    def entered(self) -> float:
        return self.visits[0].start

    @property
    def ending(self) -> str:
        """The workflow's result: converted (journey goal), completed or exited."""
        last = self.visits[-1]
        if last.outcome == "goal":
            return "converted"
        if last.outcome == "exited":
            return "exited"
        return "completed"

    @property
    def cohort_column(self) -> str:
        """How the run counts in its cohort (docs/reports.md, *Cohorts by entry week*)."""
        last = self.visits[-1]
        if last.outcome == "goal" or (last.outcome == "converted" and last.stage == STAGES[-1]):
            return "converted"
        return "exited" if last.outcome == "exited" else "completed"

    @property
    def converted_at(self) -> float | None:
        """When the journey's goal was reached, if it was."""
        last = self.visits[-1]
        return last.end if last.outcome == "goal" else None


@dataclass(frozen=True)
class Path:
    """What one kind of customer does, and what must follow."""

    name: str
    events: tuple[tuple[float, str], ...]  # (hour, event), besides the first Signed Up at 0
    runs: tuple[PlannedRun, ...]
    sms_report: str | None = None  # the Twilio status reported for the customer's texts
    erase: bool = False  # erased through the customer API once every run has ended

    def check(self) -> None:
        """The script must not race the journey's own timers, or its outcome is a toss-up."""
        for run in self.runs:
            for visit in run.visits:
                for timer in visit.timers:
                    for hour, name in self.events:
                        if abs(hour - timer) < 1:
                            raise ValueError(
                                f"{self.name}: {name} at {hour} h races the {visit.stage}"
                                f" timer at {timer} h"
                            )


@dataclass(frozen=True)
class Customer:
    id: str
    path: Path
    held_out: bool

    @property
    def email(self) -> str:
        return f"{self.id}@shop.example"


def _visit(stage: str, start: float, end: float, outcome: str, **why: str) -> Visit:
    return Visit(stage, start, end, outcome, why.get("reason"), why.get("detail"))


def A(start: float, end: float, outcome: str, **why: str) -> Visit:
    return _visit(AWARENESS, start, end, outcome, **why)


def C(start: float, end: float, outcome: str, **why: str) -> Visit:
    return _visit(CONSIDERATION, start, end, outcome, **why)


def P(start: float, end: float, outcome: str, **why: str) -> Visit:
    return _visit(PURCHASE, start, end, outcome, **why)


TIMED_OUT: Final = {"reason": "timeout"}
CLOSED_ACCOUNT: Final = {"reason": "exit_rule", "detail": CLOSED}
ERASED: Final = {"reason": "erasure"}


def run(*visits: Visit, sent: Iterable[tuple[str, float]] = ()) -> PlannedRun:
    return PlannedRun(tuple(visits), tuple(sent))


# Each path spells out what the rules make of its events (docs/journey-language.md): a stage
# goal converts at once, mid-delay or mid-wait_for; the journey goal ends the run from any
# stage; the exit event ends it; awareness moves on after 3 d, consideration exits after 3 d,
# purchase after 2 d; the welcome goes out after the 1 d delay, the offer on entering
# consideration and the reminder 1 d later unless the offer was answered.
PATHS: Final = (
    Path(
        "converts-in-delay",
        ((6, VIEWED), (18, CARTED), (30, PAID)),
        (
            run(
                A(0, 6, "converted"),
                C(6, 18, "converted"),
                P(18, 30, "converted"),
                sent=[("offer", 6), ("checkout-help", 18)],
            ),
        ),
        sms_report="delivered",
    ),
    Path(
        "converts-after-welcome",
        ((30, VIEWED), (36, REPLIED), (42, CARTED), (54, PAID)),
        (
            run(
                A(0, 30, "converted"),
                C(30, 42, "converted"),
                P(42, 54, "converted"),
                sent=[("welcome", 24), ("offer", 30), ("checkout-help", 42)],
            ),
        ),
        sms_report="delivered",
    ),
    Path(
        "times-out",
        (),
        (
            run(
                A(0, 72, "moved_on", **TIMED_OUT),
                C(72, 144, "exited", **TIMED_OUT),
                sent=[("welcome", 24), ("offer", 72), ("reminder", 96)],
            ),
        ),
    ),
    Path(
        "times-out-then-buys",
        ((78, CARTED), (90, PAID)),
        (
            run(
                A(0, 72, "moved_on", **TIMED_OUT),
                C(72, 78, "converted"),
                P(78, 90, "converted"),
                sent=[("welcome", 24), ("offer", 72), ("checkout-help", 78)],
            ),
        ),
        sms_report="delivered",
    ),
    Path(
        "closes-account",
        ((6, VIEWED), (12, CLOSED)),
        (run(A(0, 6, "converted"), C(6, 12, "exited", **CLOSED_ACCOUNT), sent=[("offer", 6)]),),
    ),
    Path(
        "orders-after-offer",
        ((6, VIEWED), (12, ORDERED)),
        (run(A(0, 6, "converted"), C(6, 12, "goal"), sent=[("offer", 6)]),),
        sms_report="delivered",
    ),
    Path(
        # The offer is reported undelivered: the welcome is the last touch that reached them.
        "orders-after-undelivered-offer",
        ((30, VIEWED), (36, ORDERED)),
        (
            run(
                A(0, 30, "converted"),
                C(30, 36, "goal"),
                sent=[("welcome", 24), ("offer", 30)],
            ),
        ),
        sms_report="undelivered",
    ),
    Path("orders-in-delay", ((12, ORDERED),), (run(A(0, 12, "goal")),)),
    Path(
        "replies-then-stalls",
        ((6, VIEWED), (12, REPLIED)),
        (run(A(0, 6, "converted"), C(6, 78, "exited", **TIMED_OUT), sent=[("offer", 6)]),),
    ),
    Path(
        "reminded-then-stalls-at-checkout",
        ((6, VIEWED), (36, CARTED)),
        (
            run(
                A(0, 6, "converted"),
                C(6, 36, "converted"),
                P(36, 84, "exited", **TIMED_OUT),
                sent=[("offer", 6), ("reminder", 30), ("checkout-help", 36)],
            ),
        ),
        sms_report="delivered",
    ),
    Path(
        "orders-at-checkout",
        ((6, VIEWED), (18, CARTED), (21, ORDERED)),
        (
            run(
                A(0, 6, "converted"),
                C(6, 18, "converted"),
                P(18, 21, "goal"),
                sent=[("offer", 6), ("checkout-help", 18)],
            ),
        ),
    ),
    Path(
        # Signs up again once the first run has completed: a second run, counted again in
        # every stage it visits and in the cohort of the week it entered.
        "re-enters-after-completing",
        ((6, VIEWED), (12, CARTED), (18, PAID), (24, SIGNED_UP), (30, ORDERED)),
        (
            run(
                A(0, 6, "converted"),
                C(6, 12, "converted"),
                P(12, 18, "converted"),
                sent=[("offer", 6), ("checkout-help", 12)],
            ),
            run(A(24, 30, "goal")),
        ),
    ),
    Path(
        "re-enters-after-closing",
        ((6, CLOSED), (12, SIGNED_UP), (18, VIEWED), (24, ORDERED)),
        (
            run(A(0, 6, "exited", **CLOSED_ACCOUNT)),
            run(A(12, 18, "converted"), C(18, 24, "goal"), sent=[("offer", 18)]),
        ),
    ),
    Path(
        # Signing up again while the run is active starts nothing: the policy waits for the
        # run to end.
        "signs-up-twice",
        ((6, SIGNED_UP), (30, VIEWED), (36, ORDERED)),
        (run(A(0, 30, "converted"), C(30, 36, "goal"), sent=[("welcome", 24), ("offer", 30)]),),
    ),
    Path(
        "erased-after-ordering",
        ((6, VIEWED), (12, ORDERED)),
        (run(A(0, 6, "converted"), C(6, 12, "goal"), sent=[("offer", 6)]),),
        erase=True,
    ),
)

# How many customers take each path: (treated, held out).
POPULATION: Final = {
    "converts-in-delay": (3, 1),
    "converts-after-welcome": (2, 0),
    "times-out": (3, 1),
    "times-out-then-buys": (2, 1),
    "closes-account": (2, 1),
    "orders-after-offer": (3, 1),
    "orders-after-undelivered-offer": (2, 0),
    "orders-in-delay": (2, 1),
    "replies-then-stalls": (2, 0),
    "reminded-then-stalls-at-checkout": (2, 0),
    "orders-at-checkout": (2, 0),
    "re-enters-after-completing": (2, 1),
    "re-enters-after-closing": (1, 0),
    "signs-up-twice": (1, 0),
    "erased-after-ordering": (2, 1),
}


def percentile_cont(values: list[float], fraction: float) -> float:
    """Postgres' ``percentile_cont``: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cohort_week(moment: datetime) -> date:
    """The Monday of the ISO week ``moment`` (aware, UTC) falls in."""
    day = moment.date()
    return day - timedelta(days=day.weekday())


@dataclass
class Ledger:
    """The numbers the reports must show, added up from the customers' planned paths."""

    customers: list[Customer]
    started: datetime  # hour 0 in the runs' time (aware)

    def runs(self, *, kept: bool = False) -> list[tuple[Customer, PlannedRun]]:
        """Every run; with ``kept``, only those whose rows survive (not erased).

        Erasure deletes a customer's runs and stage transitions but leaves the counters
        (docs/customer-api.md, docs/reports.md *Older data*): the funnel, exits and cohorts
        still count erased customers; stage timing, attribution and the holdout comparison,
        which read runs and transitions, no longer do.
        """
        return [(c, r) for c in self.customers for r in c.path.runs if not (kept and c.path.erase)]

    def visits(self, *, kept: bool = False) -> list[tuple[Customer, Visit]]:
        """Every stage visit of every run: a customer who re-enters counts once per run."""
        return [(c, v) for c, r in self.runs(kept=kept) for v in r.visits]

    def funnel(self) -> list[dict[str, Any]]:
        """Per stage, its visits by how they ended. Held-out customers count in every column
        like the others; their leaves without converting are ``holdout`` in the reasons,
        whatever the reason (docs/reports.md)."""
        rows = []
        for stage in STAGES:
            here = [(c, v) for c, v in self.visits() if v.stage == stage]
            count = Counter(v.outcome for _, v in here)
            reasons: Counter[str] = Counter()
            for customer, visit in here:
                if visit.outcome in LEAVING:
                    assert visit.reason is not None
                    reasons["holdout" if customer.held_out else visit.reason] += 1
            entered = len(here)
            rows.append(
                {
                    "stage": stage,
                    "entered": entered,
                    "current": 0,  # every run has ended
                    "converted": count["converted"],
                    "conversion_rate": round(count["converted"] / entered, 4) if entered else 0.0,
                    "moved_on": count["moved_on"],
                    "exited": count["exited"],
                    "goal": count["goal"],
                    "migrated": 0,
                    "exits_by_reason": dict(reasons),
                }
            )
        return rows

    def exits(self) -> list[dict[str, Any]]:
        """Rows in the documented order: stage, then outcome, then reason, then detail."""
        groups: dict[tuple[str, str, str, str | None], list[int]] = {}
        for customer, visit in self.visits():
            if visit.outcome not in LEAVING:
                continue
            assert visit.reason is not None
            key = (visit.stage, visit.outcome, visit.reason, visit.detail)
            counts = groups.setdefault(key, [0, 0])
            counts[1 if customer.held_out else 0] += 1
        ordered = sorted(
            groups,
            key=lambda k: (
                STAGES.index(k[0]),
                LEAVING.index(k[1]),
                REASONS.index(k[2]),
                k[3] or "",
            ),
        )
        rows = []
        for key in ordered:
            stage, outcome, reason, detail = key
            treated, held = groups[key]
            rows.append(
                {
                    "stage": stage,
                    "outcome": outcome,
                    "reason": reason,
                    "detail": detail,
                    "treated": treated,
                    "holdout": held,
                    "total": treated + held,
                }
            )
        return rows

    def messages(self) -> list[tuple[Customer, PlannedRun, str, float]]:
        """Every message sent: held-out customers get none. Erased customers' ledger rows
        stay (caps and the no-second-send guarantee count them), so their messages count."""
        return [
            (c, r, step, hour)
            for c, r in self.runs()
            if not c.held_out
            for step, hour in r.messages
        ]

    def touchpoints(self) -> list[dict[str, Any]]:
        """Per send step, in file order: what became of its messages (conversions apart)."""
        rows = []
        for step, stage, channel, _ in SENDS:
            mine = [c for c, _, s, _ in self.messages() if s == step]
            report = Counter(c.path.sms_report if channel == "sms" else None for c in mine)
            failed = report["undelivered"]
            rows.append(
                {
                    "step_id": step,
                    "stage": stage,
                    "channel": channel,
                    "total": len(mine),
                    # accepted by the provider; a text reported undelivered is failed instead
                    "sent": len(mine) - failed,
                    "delivered": report["delivered"],
                    "opened": 0,
                    "clicked": 0,
                    "unsubscribed": 0,
                    "failed": failed,
                    "bounced": 0,
                    "complained": 0,
                    "suppressed": 0,
                    "suppressed_rule": 0,
                    "skipped": 0,
                    "capped": 0,
                    "kind": "message",
                }
            )
        return rows

    def conversions(self, window_hours: float) -> dict[str, int]:
        """Last-touch attribution (docs/kpis.md): each run that reached the journey's goal
        counts once, for its own latest message that reached the customer (not failed) sent
        at most ``window_hours`` before the conversion; a run with none counts for no step."""
        found = Counter({step: 0 for step, *_ in SENDS})
        for customer, planned in self.runs(kept=True):
            at = planned.converted_at
            if at is None or customer.held_out:
                continue
            candidates = [
                (hour, step)
                for step, hour in planned.messages
                if at - window_hours <= hour <= at
                and not (step == "offer" and customer.path.sms_report == "undelivered")
            ]
            if candidates:
                found[max(candidates)[1]] += 1
        return dict(found)

    def timing(self) -> list[dict[str, Any]]:
        """Per stage, its visits by how they ended (the transitions of erased customers are
        gone, so their visits are not among them)."""
        rows = []
        for stage in STAGES:
            here = [v for _, v in self.visits(kept=True) if v.stage == stage]
            count = Counter(v.outcome for v in here)
            rows.append(
                {
                    "stage": stage,
                    "entered": len(here),
                    "converted": count["converted"] + count["goal"],
                    "left_converted": count["converted"],
                    "left_goal": count["goal"],
                    "moved_on": count["moved_on"],
                    "exited": count["exited"],
                    "migrated": 0,
                    "still_in": 0,
                }
            )
        return rows

    def time_to_convert(self) -> dict[str, tuple[float | None, float | None]]:
        """Per stage, the median and 90th percentile of the converting visits' lengths, in
        seconds of the runs' time (the scripted delays)."""
        result: dict[str, tuple[float | None, float | None]] = {}
        for stage in STAGES:
            lengths = [
                (v.end - v.start) * 3600
                for _, v in self.visits(kept=True)
                if v.stage == stage and v.converting
            ]
            result[stage] = (
                (percentile_cont(lengths, 0.5), percentile_cont(lengths, 0.9))
                if lengths
                else (None, None)
            )
        return result

    def week_of(self, planned: PlannedRun) -> date:
        return cohort_week(self.started + timedelta(hours=planned.entered))

    def cohorts(self) -> list[dict[str, Any]]:
        """Per ISO week of entry, oldest first, empty weeks included. A run's week is the one
        it entered in by its own clock, and a re-entry is a run of its own; a run converts by
        the journey's goal or the last stage's (docs/reports.md)."""
        weeks = sorted({self.week_of(r) for _, r in self.runs()})
        rows = []
        week = weeks[0]
        while week <= weeks[-1]:
            mine = [r for _, r in self.runs() if self.week_of(r) == week]
            ended = Counter(r.cohort_column for r in mine)
            entered = len(mine)
            rows.append(
                {
                    "week": week.isoformat(),
                    "entered": entered,
                    "reached": {
                        s: sum(1 for r in mine if any(v.stage == s for v in r.visits))
                        for s in STAGES
                    },
                    "converted": ended["converted"],
                    "exited": ended["exited"],
                    "completed": ended["completed"],
                    "active": 0,
                    "conversion_rate": round(ended["converted"] / entered, 4) if entered else 0.0,
                }
            )
            week += timedelta(weeks=1)
        return rows

    def holdout(self) -> dict[str, dict[str, Any]]:
        """Treated and held-out runs by the journey's goal; every run has ended, so none is
        pending. Erased customers' runs are gone from the comparison."""
        groups: dict[str, dict[str, Any]] = {}
        for name, held in (("treated", False), ("held_out", True)):
            mine = [r for c, r in self.runs(kept=True) if c.held_out == held]
            converted = sum(1 for r in mine if r.converted_at is not None)
            groups[name] = {
                "entrants": len(mine),
                "conversions": converted,
                "pending": 0,
                "rate": converted / len(mine) if mine else None,
            }
        return groups

    def emails(self) -> Counter[tuple[str, str]]:
        """(address, subject) of every email sent."""
        subjects = {step: text for step, _, channel, text in SENDS if channel == "email"}
        return Counter(
            (c.email, subjects[step]) for c, _, step, _ in self.messages() if step in subjects
        )

    def texts(self) -> Counter[str]:
        """The customer of every text sent."""
        return Counter(c.id for c, _, step, _ in self.messages() if step == "offer")

    def events(self) -> dict[float, list[tuple[Customer, str]]]:
        """What the script sends, by hour: everyone signs up at 0, then each path's events."""
        by_hour: dict[float, list[tuple[Customer, str]]] = {0.0: []}
        for customer in self.customers:
            by_hour[0.0].append((customer, SIGNED_UP))
            for hour, name in customer.path.events:
                by_hour.setdefault(float(hour), []).append((customer, name))
        return dict(sorted(by_hour.items()))


# Erased while waiting (the customer API deletes the running workflow and records the exit):
# played on the Temporal dev server, whose clock is the wall clock, so no hour passes.
ERASURE_PATHS: Final = (
    Path("erased-in-delay", (), (run(A(0, 0, "exited", **ERASED)),), erase=True),
    Path(
        "erased-awaiting-reply",
        ((0, VIEWED),),
        (run(A(0, 0, "converted"), C(0, 0, "exited", **ERASED), sent=[("offer", 0)]),),
        erase=True,
    ),
    Path("closes-account-at-once", ((0, CLOSED),), (run(A(0, 0, "exited", **CLOSED_ACCOUNT)),)),
)
ERASURE_POPULATION: Final = {
    "erased-in-delay": (1, 1),
    "erased-awaiting-reply": (1, 0),
    "closes-account-at-once": (1, 0),
}


def population(
    paths: Iterable[Path], counts: dict[str, tuple[int, int]], held_out: Callable[[str], bool]
) -> list[Customer]:
    """The customers of each path. The holdout draw depends on the customer id alone, so ids
    are picked to fall on the planned side of it."""
    customers: list[Customer] = []
    for path in paths:
        path.check()
        for side, wanted in zip((False, True), counts[path.name], strict=True):
            ids = (f"{path.name}-{n}" for n in itertools.count(1))
            chosen = itertools.islice((i for i in ids if held_out(i) == side), wanted)
            customers += [Customer(i, path, side) for i in chosen]
    return customers
