"""A journey written back as a YAML file, as the shipped journeys are written."""

from __future__ import annotations

from typing import Any

import yaml

from .property_filters import OPERATORS
from .spec import JourneySpec


def dump_yaml(spec: JourneySpec, *, schema: str | None = None) -> str:
    """The journey as a file: block style, keys in model order, defaults left out.

    ``schema`` (a path or URL of ``journey.schema.json``) adds the comment editors read.
    """
    data = _prune(spec.model_dump(mode="json", exclude_defaults=True))
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2)
    header = f"# yaml-language-server: $schema={schema}\n" if schema else ""
    return header + text


def _prune(value: Any) -> Any:
    """Leave out empty mappings: a model whose fields are all at their default (``cap: {}``)."""
    if isinstance(value, dict):
        pruned = {key: _prune(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item != {}}
    if isinstance(value, list):
        return [_prune(item) for item in value]
    return value


_STR = "tag:yaml.org,2002:str"
_OPERATORS = frozenset(OPERATORS)


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, writing lists indented under their key as journey files do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar(_STR, value, style="|")
    # Quote what YAML would read as something else ("09:00", "yes", "null") or cannot
    # write plain ("{{ ... }}"), in double quotes like the shipped files.
    analysis = dumper.analyze_scalar(value)
    plain = analysis.allow_flow_plain and analysis.allow_block_plain and not analysis.empty
    if not plain or _resolve(dumper, value) != _STR:
        return dumper.represent_scalar(_STR, value, style='"')
    return dumper.represent_scalar(_STR, value)


def _resolve(dumper: _Dumper, value: str) -> str:
    """The tag YAML gives ``value`` written plain."""
    tag: str = dumper.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag


def _is_scalar(value: object) -> bool:
    return value is None or (isinstance(value, str | int | float | bool) and "\n" not in str(value))


def _represent_list(dumper: _Dumper, items: list[Any]) -> yaml.SequenceNode:
    # Short lists of scalars read best inline: weekdays: [mon, tue], tags: [welcomed].
    flow = all(_is_scalar(item) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


def _represent_dict(dumper: _Dumper, mapping: dict[str, Any]) -> yaml.MappingNode:
    # Conditions inline, as in the docs: cart.total: {gte: 20, lt: 500}.
    flow = bool(mapping) and mapping.keys() <= _OPERATORS
    flow = flow and all(_is_scalar(v) or isinstance(v, list) for v in mapping.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", mapping, flow_style=flow)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)
