"""The JSON Schema of journey files, for editors and other tools.

Generated from the spec models (``spec.py``), whose annotations describe what each custom
validator accepts. The schema checks the shape of a file; the compiler remains the judge of
what the schema cannot say (template syntax, time zone names, goto targets, loops, ...).

The committed copy is ``schema/journey.schema.json``; regenerate it with::

    python -m journeyman.orchestrator.language.schema > schema/journey.schema.json
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import json
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from . import spec
from .spec import JourneySpec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# The project publishes no URL of its own: a URN names the schema without pretending to one.
SCHEMA_ID = "urn:journeyman:schema:journey"
REGENERATE = "python -m journeyman.orchestrator.language.schema > schema/journey.schema.json"


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
    """The docstring under ``field`` in the spec model that declares it."""
    for cls in model.__mro__:
        if cls.__module__ == spec.__name__:
            text = _field_docs().get(cls.__name__, {}).get(field)
            if text is not None:
                return text
    return None


@functools.cache
def _field_docs() -> dict[str, dict[str, str]]:
    """{model: {field: docstring}} for the classes of ``spec.py``, read from its source."""
    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(spec)).body:
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


def schema_text() -> str:
    """The schema as committed: sorted keys, two-space indents, a final newline."""
    return json.dumps(journey_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
