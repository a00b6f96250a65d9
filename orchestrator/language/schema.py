"""The JSON Schemas of journey and segment files, for editors and other tools.

Generated from the spec models (``spec.py``, and ``SegmentSpec`` for segment files), whose
annotations describe what each custom validator accepts. The schema checks the shape of a
file; the compiler remains the judge of what the schema cannot say (template syntax, time
zone names, goto targets, loops, conditions, ...).

The committed copies are ``schema/journey.schema.json`` and ``schema/segment.schema.json``;
regenerate them with::

    python -m journeyman.orchestrator.language.schema > schema/journey.schema.json
    python -m journeyman.orchestrator.language.schema segment > schema/segment.schema.json
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import json
import sys
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from journeyman.orchestrator.customers.segment_files import SegmentSpec

from .spec import JourneySpec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# The project publishes no URL of its own: a URN names the schema without pretending to one.
SCHEMA_ID = "urn:journeyman:schema:journey"
SEGMENT_SCHEMA_ID = "urn:journeyman:schema:segment"
REGENERATE = "python -m journeyman.orchestrator.language.schema > schema/journey.schema.json"
REGENERATE_SEGMENT = (
    "python -m journeyman.orchestrator.language.schema segment > schema/segment.schema.json"
)


class _Generator(GenerateJsonSchema):
    """Pydantic's generator, tuned for people reading the schema in an editor."""

    def field_title_should_be_set(self, schema: CoreSchema | core_schema.ModelField) -> bool:
        # "Max Dwell" above max_dwell says nothing the key does not; descriptions do.
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        if "description" in json_schema:
            json_schema["description"] = _paragraph(json_schema["description"])
        for name, field in json_schema.get("properties", {}).items():
            text = _field_doc(schema["cls"], name)
            if text is not None:
                field.setdefault("description", text)
        return json_schema

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        # Pydantic turns a key pattern into patternProperties, which lets any other key
        # through; propertyNames rejects them, as the validators do.
        json_schema = super().dict_schema(schema)
        patterns = json_schema.pop("patternProperties", None)
        if patterns:
            ((pattern, values),) = patterns.items()
            json_schema["propertyNames"] = {
                **json_schema.get("propertyNames", {}),
                "pattern": pattern,
            }
            json_schema["additionalProperties"] = values
        return json_schema


def _field_doc(model: type[Any], field: str) -> str | None:
    """The docstring under ``field`` in the model of the engine that declares it."""
    for cls in model.__mro__:
        if cls.__module__.startswith("journeyman."):
            text = _field_docs(cls.__module__).get(cls.__name__, {}).get(field)
            if text is not None:
                return text
    return None


@functools.cache
def _field_docs(module: str) -> dict[str, dict[str, str]]:
    """{model: {field: docstring}} for the classes of a module, read from its source."""
    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(sys.modules[module])).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for field, after in itertools.pairwise(node.body):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs.setdefault(node.name, {})[field.target.id] = _paragraph(after.value.value)
    return docs


def _paragraph(text: str) -> str:
    """Docstring text as one line: editors wrap it themselves."""
    return " ".join(text.split())


def journey_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a journey file."""
    generated = JourneySpec.model_json_schema(mode="validation", schema_generator=_Generator)
    return {
        **generated,
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "Journeyman journey",
        "description": (
            "A customer journey: who enters, the lifecycle stages they move through, the goal"
            " of each stage and the touchpoints on the way. See docs/journey-language.md."
        ),
    }


def segment_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a segment or persona file."""
    generated = SegmentSpec.model_json_schema(mode="validation", schema_generator=_Generator)
    return {
        **generated,
        "$schema": DRAFT,
        "$id": SEGMENT_SCHEMA_ID,
        "title": "Journeyman segment",
        "description": (
            "A segment or persona: a named condition over a customer's profile, behaviour and"
            " metrics, which journeys enter, exit and wait on. See docs/segments.md."
        ),
    }


def schema_text() -> str:
    """The journey schema as committed: sorted keys, two-space indents, a final newline."""
    return _text(journey_schema())


def segment_schema_text() -> str:
    """The segment schema as committed, like ``schema_text``."""
    return _text(segment_schema())


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "journey"
    if kind not in ("journey", "segment"):
        sys.exit(f"usage: python -m {__spec__.name} [journey|segment]")
    print(segment_schema_text() if kind == "segment" else schema_text(), end="")
