"""Property tests: whatever text a journey file holds, compiling gives a plan or diagnostics.

Random YAML documents and mutations of a valid journey must never crash the compiler: the
outcome is a ``Plan``, or a ``JourneyError`` whose every diagnostic says something.
"""

from __future__ import annotations

import copy
import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyman.orchestrator.language import JourneyError, compile_source
from journeyman.workflows.plan import Plan

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI is reproducible
    suppress_health_check=[HealthCheck.too_slow],
)

VALID = textwrap.dedent(
    """\
    id: fuzz
    name: Fuzz
    entry:
      event: Checkout Started
      where: {cart.total: {gte: 20, lt: 500}}
      api: true
      reentry: {after: 30d}
      cap: {total: 1000, per_day: 50}
      holdout: 10%
    goal: {event: Order Completed, where: {total: {gt: 0}}, within: 7d}
    exit: [{event: Unsubscribed}]
    timezone: Europe/Paris
    quiet_hours: {start: "21:00", end: "08:00", action: defer}
    frequency_caps: [{channel: email, limit: 3, per: 1w}]
    throttle: 600
    priority: 2
    traits: [tier]
    templates:
      hi: {subject: "Hi {{ profile.name }}", body: Hello, locales: {fr: {subject: Salut, body: Yo}}}
    defaults: {max_dwell: 10d, on_max_dwell: exit}
    stages:
      - name: consider
        goal: {event: Paid}
        touchpoints:
          - {id: top, send: {template: hi}}
          - wait: {until: "09:00", weekdays: [mon, fri]}
          - wait_for:
              event: Viewed
              where: {category: skin}
              timeout: 1d
              lookback: 1h
              on_event: [{update: {set: {seen: true}, increment: {visits: 1}, tags: [warm]}}]
              on_timeout: [{send: {subject: Still, body: Here}}]
          - branch:
              cases: [{when: profile.tier == "gold", then: [{send: {subject: Gold, body: Hi}}]}]
              otherwise: [{wait: 1d}, {goto: top}]
      - name: buy
        touchpoints:
          - wait: {until_date: birthday, offset: -7d, at: "10:00", yearly: true}
          - split: [{name: a, weight: 1, then: [{wait: 1h}]}, {name: b, weight: 3}]
          - experiment:
              variants: [{name: c, weight: 1}, {name: p, weight: 1, then: [{exit: true}]}]
              control: c
              metric: {event: Order Completed, within: 3d}
              decide: {after: 14d, min_per_variant: 100, confidence: 0.95}
          - exit: converted
    """
)

KEYS = sorted(
    {
        "id", "name", "entry", "event", "where", "api", "reentry", "cap", "total", "per_day",
        "holdout", "goal", "within", "exit", "timezone", "quiet_hours", "start", "end",
        "action", "frequency_caps", "channel", "limit", "per", "throttle", "priority", "traits",
        "templates", "subject", "body", "html", "locales", "defaults", "max_dwell",
        "on_max_dwell", "stages", "touchpoints", "send", "template", "wait", "until",
        "weekdays", "until_date", "offset", "at", "yearly", "wait_for", "timeout", "lookback",
        "on_event", "on_timeout", "branch", "cases", "when", "then", "otherwise", "split",
        "weight", "experiment", "variants", "control", "metric", "decide", "after",
        "min_per_variant", "confidence", "update", "set", "increment", "tags", "goto",
        "gte", "lt", "one_of", "exists", "once", "concurrent",
    }
)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["09:00", "9am", "-7d", "1d12h", "10%", "150%", "once", "email", "sms"]),
    st.sampled_from(["profile.age > 60", "count(", "mon", "Europe/Paris", "{{ x }", "a..b"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(-3, 3))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)
conditions = st.text(
    alphabet="profile.agevntcoursldy()<>=!\"' 0123456789,:[]-_", min_size=1, max_size=40
)
durations = st.one_of(
    st.text(alphabet="0123456789wdhms -.:%", max_size=10),
    st.integers(min_value=-(10**12), max_value=10**12),
)


VALID_DATA = yaml.safe_load(VALID)

# libyaml's dumper when there is one: pure-Python YAML would dominate the run time.
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(document: object) -> str:
    return yaml.dump(document, Dumper=DUMPER, sort_keys=False, allow_unicode=True)


def check_outcome(text: str) -> None:
    """Compile; anything but a plan or a well-formed ``JourneyError`` fails the test."""
    try:
        plan = compile_source(text, source="fuzz.yaml", warnings=[])
    except JourneyError as exc:
        assert exc.diagnostics, "a JourneyError must say what is wrong"
        for diagnostic in exc.diagnostics:
            assert diagnostic.message.strip(), diagnostic
            assert str(diagnostic)
    else:
        assert isinstance(plan, Plan)
        assert plan.version


def places(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``node``, the root included."""
    found = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(places(value, (*at, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(places(value, (*at, index)))
    return found


def parent_of(document: Any, at: tuple[Any, ...]) -> Any:
    node = document
    for part in at[:-1]:
        node = node[part]
    return node


# Where random conditions and durations go, when the document still has such a key.
CONDITION_KEYS = frozenset({"when"})
DURATION_KEYS = frozenset(
    {"wait", "timeout", "lookback", "within", "max_dwell", "per", "after", "offset"}
)


def mutate(document: Any, data: st.DataObject) -> Any:
    """Apply one random mutation somewhere in ``document`` (in place) and return it."""
    action = data.draw(
        st.sampled_from(["drop", "replace", "duplicate", "wrong type", "condition", "duration"]),
        label="action",
    )
    targets = places(document)[1:]
    wanted = {"condition": CONDITION_KEYS, "duration": DURATION_KEYS}.get(action)
    if wanted is not None:
        targets = [at for at in targets if at[-1] in wanted] or targets
    at = data.draw(st.sampled_from(targets), label="at")
    parent, last = parent_of(document, at), at[-1]
    if action == "drop":
        del parent[last]
    elif action == "replace":
        parent[last] = data.draw(values, label="value")
    elif action == "duplicate":
        if isinstance(parent, list):
            parent.insert(last, parent[last])  # duplicates ids, paths, cases
        else:
            parent[data.draw(st.sampled_from(KEYS), label="key")] = parent[last]
    elif action == "wrong type":
        current = parent[last]
        parent[last] = [current] if not isinstance(current, list) else {"x": current}
    elif action == "condition":
        parent[last] = data.draw(conditions, label="condition")
    else:
        parent[last] = data.draw(durations, label="duration")
    return document


def test_the_valid_journey_compiles() -> None:
    assert isinstance(compile_source(VALID, source="fuzz.yaml"), Plan)


@FUZZ
@given(st.one_of(values, st.dictionaries(st.sampled_from(KEYS), values, max_size=6)))
def test_random_documents_compile_or_explain(document: object) -> None:
    # Any YAML value, and mappings whose keys are the language's own, nested anywhere.
    check_outcome(dump(document))


@FUZZ
@given(st.data(), st.integers(min_value=1, max_value=4))
def test_mutated_journeys_compile_or_explain(data: st.DataObject, rounds: int) -> None:
    document = copy.deepcopy(VALID_DATA)
    for _ in range(rounds):
        if not places(document)[1:]:
            break
        document = mutate(document, data)
    check_outcome(dump(document))


@FUZZ
@given(st.data())
def test_mutated_text_compiles_or_explains(data: st.DataObject) -> None:
    # Edits to the text itself: repeated lines make duplicate keys, cuts make syntax errors.
    lines = VALID.splitlines(keepends=True)
    index = data.draw(st.integers(min_value=0, max_value=len(lines) - 1), label="line")
    edit = data.draw(st.sampled_from(["repeat", "delete", "cut", "insert"]), label="edit")
    if edit == "repeat":
        lines.insert(index, lines[index])
    elif edit == "delete":
        del lines[index]
    elif edit == "cut":
        line = lines[index]
        cut = data.draw(st.integers(min_value=0, max_value=len(line)), label="cut")
        lines[index] = line[:cut] + "\n"
    else:
        line = lines[index]
        at = data.draw(st.integers(min_value=0, max_value=len(line)), label="insert at")
        extra = data.draw(st.text(alphabet=" -:{}[]\"'#&*!|>%@`,?\t\nab0", max_size=3))
        lines[index] = line[:at] + extra + line[at:]
    check_outcome("".join(lines))


# --- crashes found on the way, kept as regression tests -------------------------------------


def nested_branches(levels: int) -> str:
    """A journey whose one touchpoint is ``levels`` branches, each inside the one before."""
    steps = "[{wait: 1m}]"
    for _ in range(levels):
        steps = f"[{{branch: {{cases: [{{when: profile.age > 1, then: {steps}}}]}}}}]"
    return f"id: x\nname: X\nentry: {{event: A}}\nstages: [{{name: s, touchpoints: {steps}}}]\n"


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "{a: " * 1000 + "1" + "}" * 1000,  # PyYAML's parser itself runs out of stack
        "a: " + "[" * 150 + "]" * 150,  # parses, but would overflow later
        nested_branches(100),
    ],
    ids=["mapping-1000", "list-150", "branches-100"],
)
def test_deeply_nested_files_are_refused_rather_than_overflowing_the_stack(text: str) -> None:
    with pytest.raises(JourneyError) as caught:
        compile_source(text, source="deep.yaml")
    assert [str(d) for d in caught.value.diagnostics] == [
        "deep.yaml: the file nests deeper than 100 levels"
    ]


def test_a_dozen_nested_branches_still_compile() -> None:
    plan = compile_source(nested_branches(12))
    assert plan.step("s.1" + ".case1.1" * 12).kind == "wait"


def test_a_deeply_nested_template_is_an_error_not_a_crash() -> None:
    # Jinja's parser recurses once per parenthesis.
    body = "{{ " + "(" * 300 + "1" + ")" * 300 + " }}"
    text = "id: x\nname: X\nentry: {event: A}\nstages:\n  - name: s\n    touchpoints:\n"
    text += f"      - send: {{subject: a, body: '{body}'}}\n"
    with pytest.raises(JourneyError) as caught:
        compile_source(text, source="deep.yaml")
    assert [str(d) for d in caught.value.diagnostics] == [
        "deep.yaml:7:34: stages[0].touchpoints[0].send.body: the template nests too deeply"
    ]
