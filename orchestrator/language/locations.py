"""Diagnostics and YAML positions: load a journey file keeping the node tree for error marks."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loc = Sequence[str | int]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")

# Aliases share nodes, so a small file can stand for a huge tree ("billion laughs"); journeys
# are never near this size, and validating such a tree would take forever.
MAX_VALUES = 100_000

# Parsing, validating and compiling recurse along the nesting: a journey needs a few dozen
# levels (about five per nested touchpoint list), far below where Python's stack runs out.
MAX_DEPTH = 100


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a journey file; ``line`` and ``column`` are 1-based."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        place = self.file
        if self.line is not None:
            place += f":{self.line}"
            if self.column is not None:
                place += f":{self.column}"
        where = f" {self.path}:" if self.path else ""
        label = " warning:" if self.severity == "warning" else ""
        return f"{place}:{label}{where} {self.message}"


class JourneyError(ValueError):
    """A journey file that does not compile; ``diagnostics`` lists every problem found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=_order)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    def __reduce__(self) -> tuple[type[JourneyError], tuple[list[Diagnostic]]]:
        # The default would rebuild from the message text; keep the structured diagnostics.
        return (JourneyError, (self.diagnostics,))


def _order(diagnostic: Diagnostic) -> tuple[str, int, int]:
    return (diagnostic.file, diagnostic.line or 0, diagnostic.column or 0)


def describe_value(value: object) -> str:
    """A value as an error message names it: ``null``, ``a mapping``, ``a list``, ``'text'``."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def render_path(loc: Loc) -> str:
    """Render a location as ``stages[1].touchpoints[0].send.subject``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            # Property paths contain dots and event names spaces: quote them to stay unambiguous.
            text += f'["{part}"]'
    return text


class Document:
    """A parsed journey file: its data and the YAML nodes that say where each value was."""

    def __init__(self, source: str, text: str, root: Node, data: Any) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.root = root
        self.data = data

    def node(self, loc: Loc, *, key: bool = False) -> Node:
        """The deepest node along ``loc``; with ``key``, the key node of the last mapping step."""
        node = self.root
        last = len(loc) - 1
        for index, part in enumerate(loc):
            if isinstance(node, MappingNode):
                pair = _find_key(node, part)
                if pair is None:
                    break
                node = pair[0] if key and index == last else pair[1]
            elif isinstance(node, SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    break
                node = node.value[part]
            else:
                break
        return node

    def diagnostic(self, loc: Loc, message: str, *, key: bool = False) -> Diagnostic:
        """A diagnostic placed at the node ``loc`` leads to."""
        mark = self.node(loc, key=key).start_mark
        return Diagnostic(self.source, mark.line + 1, mark.column + 1, render_path(loc), message)

    def template_diagnostic(self, loc: Loc, message: str, template_line: int) -> Diagnostic:
        """Place a template error on its own line when the YAML layout allows it."""
        node = self.node(loc)
        mark = node.start_mark
        if isinstance(node, ScalarNode) and node.style == "|":
            # A literal block's content starts on the line after the '|' and keeps its lines.
            index = mark.line + template_line
            if index < len(self.lines):
                text = self.lines[index]
                column = len(text) - len(text.lstrip(" ")) + 1
                return Diagnostic(self.source, index + 1, column, render_path(loc), message)
        if template_line > 1:
            message += f" (line {template_line} of the template)"
        return Diagnostic(self.source, mark.line + 1, mark.column + 1, render_path(loc), message)


def _find_key(node: MappingNode, part: str | int) -> tuple[Node, Node] | None:
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == str(part):
            return key_node, value_node
    return None


def load(text: str, source: str) -> Document:
    """Parse YAML text, or raise ``JourneyError`` for syntax errors and duplicate keys."""
    try:
        # PyYAML's reader checks every character while the loader is built, so a control
        # character (which YAML forbids) fails here, before any parsing.
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise JourneyError([_unreadable(source, text, exc)]) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise JourneyError([Diagnostic(source, None, None, "", "the file is empty")])
        if _depth(root, {}) > MAX_DEPTH:
            raise JourneyError([_too_deep(source)])
        if _expanded_size(root, {}) > MAX_VALUES:
            message = f"the file expands to more than {MAX_VALUES} values through aliases"
            raise JourneyError([Diagnostic(source, None, None, "", message)])
        duplicates = [
            Diagnostic(source, k.start_mark.line + 1, k.start_mark.column + 1, "", message)
            for k, message in _duplicate_keys(root)
        ]
        if duplicates:
            raise JourneyError(duplicates)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise JourneyError([_syntax_error(source, exc)]) from None
    except yaml.reader.ReaderError as exc:
        raise JourneyError([_unreadable(source, text, exc)]) from None
    except yaml.YAMLError as exc:
        raise JourneyError([Diagnostic(source, None, None, "", f"YAML error: {exc}")]) from None
    except RecursionError:
        # PyYAML's parser recurses once per level: a deep enough file fails before _depth.
        raise JourneyError([_too_deep(source)]) from None
    finally:
        loader.dispose()
    return Document(source, text, root, data)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without ``!!set``, whose order changes from one process to the next
    (the same file must always give the same version)."""

    def construct_set(self, node: Node) -> Any:
        raise yaml.constructor.ConstructorError(
            None, None, "a set (!!set) has no order; use a list", node.start_mark
        )


_Loader.add_constructor("tag:yaml.org,2002:set", _Loader.construct_set)


def _syntax_error(source: str, exc: yaml.MarkedYAMLError) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    detail = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        # PyYAML splits some sentences in two ("expected ...", "but found ...").
        joined = exc.problem.startswith("but ")
        detail = f"{exc.context}, {exc.problem}" if joined else f"{exc.problem} ({exc.context})"
    if mark is None:
        return Diagnostic(source, None, None, "", f"YAML syntax error: {detail}")
    return Diagnostic(source, mark.line + 1, mark.column + 1, "", f"YAML syntax error: {detail}")


def _unreadable(source: str, text: str, exc: yaml.reader.ReaderError) -> Diagnostic:
    """A character YAML does not allow, placed at its line and column."""
    code = exc.character if isinstance(exc.character, int) else None
    what = f"the character U+{code:04X}" if code is not None else "a character"
    message = f"{what} is not allowed in a YAML file (control characters must be escaped)"
    if not 0 <= exc.position <= len(text):
        return Diagnostic(source, None, None, "", f"YAML error: {message}")
    before = text[: exc.position]
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    return Diagnostic(source, line, column, "", f"YAML syntax error: {message}")


def _too_deep(source: str) -> Diagnostic:
    return Diagnostic(source, None, None, "", f"the file nests deeper than {MAX_DEPTH} levels")


def _depth(node: Node, depths: dict[int, int]) -> int:
    """How deeply the tree nests once aliases are expanded (memoized; a cycle is too deep)."""
    known = depths.get(id(node))
    if known is not None:
        return known
    depths[id(node)] = MAX_DEPTH + 1  # a node reached again while measuring it is recursive
    children: list[Node] = []
    if isinstance(node, MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, SequenceNode):
        children = list(node.value)
    depth = 1 + max((_depth(child, depths) for child in children), default=0)
    depths[id(node)] = min(depth, MAX_DEPTH + 1)
    return depths[id(node)]


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """How many nodes the tree has once every alias is expanded (memoized, so linear)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_VALUES + 1  # a node reached again while counting it is recursive
    children: list[Node] = []
    if isinstance(node, MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, SequenceNode):
        children = list(node.value)
    size = 1
    for child in children:
        size = min(size + _expanded_size(child, sizes), MAX_VALUES + 1)
    sizes[id(node)] = size
    return size


def _duplicate_keys(root: Node) -> Iterator[tuple[Node, str]]:
    # PyYAML silently keeps the last of two equal keys; a lost touchpoint must be an error.
    seen: set[int] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if id(node) in seen:  # aliases share nodes, and may even refer to themselves
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            first: dict[str, Node] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value != "<<":
                    earlier = first.setdefault(key_node.value, key_node)
                    if earlier is not key_node:
                        line = earlier.start_mark.line + 1
                        yield key_node, f"duplicate key '{key_node.value}' (first on line {line})"
                pending.append(value_node)
        elif isinstance(node, SequenceNode):
            pending.extend(node.value)
