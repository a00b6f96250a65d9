"""Problems found in a journey file's data before a plan is built: pydantic's validation
errors, placed in the file and worded for its author, and duplicate stage names and step ids.

Duplicates are found in the raw data, so that they show beside every other error.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .fields import UNION_TAGS
from .locations import Diagnostic, Document, Loc, describe_value
from .sends import misplaced_key, missing_key


def validation_diagnostics(document: Document, exc: ValidationError) -> list[Diagnostic]:
    """Pydantic's errors for a file's data, placed in the file and worded for its author."""
    return [_diagnostic(document, error) for error in exc.errors()]


def _diagnostic(document: Document, error: ErrorDetails) -> Diagnostic:
    raw = error["loc"]
    loc = [part for part in raw if part != "[key]" and part not in UNION_TAGS]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "template":
        return document.template_diagnostic(loc, error["msg"], int(ctx["template_line"]))
    # The model of a send's channel, when the key is one of the send's own.
    tag = str(raw[-2]) if len(raw) > 1 and str(raw[-2]).startswith("@send:") else ""
    if kind == "missing":
        return document.diagnostic(loc[:-1], missing_key(tag, str(loc[-1])))
    if kind == "extra_forbidden":
        message = misplaced_key(tag, str(loc[-1])) or f"unknown key '{loc[-1]}'"
        return document.diagnostic(loc, message, key=True)
    return document.diagnostic(loc, _message(error), key="[key]" in raw)


# Pydantic's wording for numbers, in the words of the rest of the messages.
_BOUNDS = {
    "greater_than": ("gt", "must be more than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}


def _message(error: ErrorDetails) -> str:
    kind, value = error["type"], error["input"]
    ctx = error.get("ctx") or {}
    if kind in ("string_type", "str_type"):
        return f"expected text, got {describe_value(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping, got {describe_value(value)}"
    if kind == "list_type":
        return f"expected a list, got {describe_value(value)}"
    if kind == "too_short":
        if ctx.get("actual_length"):
            return f"needs at least {ctx.get('min_length')} items, got {ctx['actual_length']}"
        return "must not be empty"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {describe_value(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {describe_value(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {describe_value(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {describe_value(value)}"
    if kind in _BOUNDS:
        bound, words = _BOUNDS[kind]
        return f"{words} {ctx.get(bound)}, got {describe_value(value)}"
    if kind == "invalid_key":
        return f"a key must be text, got {describe_value(value)}"
    return error["msg"]


def duplicates(document: Document) -> list[Diagnostic]:
    """Duplicate stage names and step ids, found in the raw data so other errors still show."""
    stages = document.data.get("stages")
    if not isinstance(stages, list):
        return []
    found: list[Diagnostic] = []
    names: dict[str, Loc] = {}
    ids: dict[str, Loc] = {}
    for index, stage in enumerate(stages):
        if not isinstance(stage, dict):
            continue
        name = stage.get("name")
        if isinstance(name, str):
            found.extend(_claim(document, names, name, ("stages", index, "name"), "stage name"))
        # In the file's order, so that "first on line N" names the earlier of the two.
        for key in stage:
            if key == "touchpoints":
                loc = ("stages", index, "touchpoints")
                found.extend(_duplicate_ids(document, stage["touchpoints"], loc, ids))
            elif key == "observe":
                loc = ("stages", index, "observe")
                found.extend(_duplicate_observed(document, stage["observe"], loc, ids))
    return found


def _duplicate_observed(
    document: Document, observed: object, loc: Loc, ids: dict[str, Loc]
) -> list[Diagnostic]:
    # Observed touchpoints share the report with steps, by id: one id names one row.
    if not isinstance(observed, list):
        return []
    found: list[Diagnostic] = []
    for index, item in enumerate(observed):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            here = (*loc, index, "id")
            found.extend(_claim(document, ids, item["id"], here, "touchpoint id"))
    return found


def _duplicate_ids(
    document: Document, touchpoints: object, loc: Loc, ids: dict[str, Loc]
) -> list[Diagnostic]:
    if not isinstance(touchpoints, list):
        return []
    found: list[Diagnostic] = []
    for index, touchpoint in enumerate(touchpoints):
        if not isinstance(touchpoint, dict):
            continue
        here = (*loc, index)
        send = touchpoint.get("send")
        if isinstance(touchpoint.get("id"), str):
            found.extend(_claim(document, ids, touchpoint["id"], (*here, "id"), "step id"))
        if isinstance(send, dict) and isinstance(send.get("id"), str):
            found.extend(_claim(document, ids, send["id"], (*here, "send", "id"), "step id"))
        for nested, nested_loc in _nested_lists(touchpoint, here):
            found.extend(_duplicate_ids(document, nested, nested_loc, ids))
    return found


def _nested_lists(touchpoint: dict[str, Any], loc: Loc) -> list[tuple[object, Loc]]:
    """The touchpoint lists nested in a raw touchpoint, with where they are."""
    found: list[tuple[object, Loc]] = []
    wait_for, branch = touchpoint.get("wait_for"), touchpoint.get("branch")
    if isinstance(wait_for, dict):
        for key in ("on_event", "on_timeout"):
            found.append((wait_for.get(key), (*loc, "wait_for", key)))
    if isinstance(branch, dict):
        cases = branch.get("cases")
        for n, case in enumerate(cases if isinstance(cases, list) else []):
            if isinstance(case, dict):
                found.append((case.get("then"), (*loc, "branch", "cases", n, "then")))
        found.append((branch.get("otherwise"), (*loc, "branch", "otherwise")))
    paths: list[tuple[object, Loc]] = [(touchpoint.get("split"), (*loc, "split"))]
    experiment = touchpoint.get("experiment")
    if isinstance(experiment, dict):
        paths.append((experiment.get("variants"), (*loc, "experiment", "variants")))
    for items, items_loc in paths:
        for n, path in enumerate(items if isinstance(items, list) else []):
            if isinstance(path, dict):
                found.append((path.get("then"), (*items_loc, n, "then")))
    return found


def _claim(
    document: Document, owners: dict[str, Loc], value: str, loc: Loc, what: str
) -> list[Diagnostic]:
    first = owners.setdefault(value, loc)
    if first is loc:
        return []
    line = document.node(first).start_mark.line + 1
    return [document.diagnostic(loc, f"duplicate {what} '{value}' (first on line {line})")]
