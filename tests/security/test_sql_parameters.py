"""SQL is written with parameters: values never become part of the query text.

The rule, for every module of the engine (``orchestrator``, ``workflows``, ``channels``):

- A query's text is fixed; what varies travels as a parameter (``$1``, ``$2``, ... with the
  values passed beside the text to asyncpg). A Temporal visibility query, which has no
  parameters, quotes each value with the module's ``_quote``.
- Text that looks like SQL (statement and clause keywords, ``::`` casts, ``$n`` placeholders,
  ``coalesce(``, ``jsonb``, or Temporal's visibility attributes) and is built with an f-string,
  ``%``, ``.format()`` or ``+`` may only splice in: literals; module constants (an ALL_CAPS
  name assigned at the top of the same module); a choice between those (``a if c else b``);
  an f-string whose own pieces follow this rule; or a piece listed in ``ALLOWED`` for its
  module, each with the reason it cannot carry a value from outside.
- An ``ALLOWED`` entry that matches nothing any more fails too, so the list stays short and
  true. Adding an entry is a review: say why the piece is an identifier or a placeholder,
  never a value.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "workflows", "channels")

SQL_LIKE = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|FROM|WHERE|JOIN|VALUES|RETURNING"
    r"|CONFLICT|CASE|WHEN|THEN|IS NULL|IS NOT NULL|UNION|WITH|ORDER BY|GROUP BY|LIMIT|OFFSET"
    r"|SET LOCAL|CREATE|DROP|ALTER|TRUNCATE|COPY|GRANT"
    r"|ExecutionStatus|WorkflowId|WorkflowType|JourneyId)\b"
    r"|::|\$\d|\bcoalesce\(|\bto_jsonb|\bjsonb"
)
CONSTANT_NAME = re.compile(r"_?[A-Z][A-Z0-9_]*")

# module -> [(piece, as a regex over its source text; why it holds no outside value)]
ALLOWED: dict[str, list[tuple[str, str]]] = {
    "orchestrator/storage/property_sql.py": [
        (r"bind\(.+\)", "bind() adds the value as a parameter and returns its $n placeholder"),
        (r"value|bound", "built only from bind() placeholders and the fixed properties path"),
        (r"_COMPARISONS\[test\.op\]", "one of four operators from a fixed map"),
        (r"truth|number", "chosen among the literals true/false and 1/0 just above"),
    ],
    "orchestrator/storage/kpis.py": [
        (r"bind\(.+\)", "bind() adds the value as a parameter and returns its $n placeholder"),
        (r"6 \+ len\(extra\)", "the number of the next $n placeholder"),
        (r"cast", "a type name written in this module (text, numeric)"),
        (r"kpi\.type", "the plan's Literal track/page/screen, asserted just above"),
        (r"where_sql\(kpi\.where, bind\)", "property_sql binds every value (see its entries)"),
        (r"ctes", "joined from the module's constant CTE texts"),
    ],
    "orchestrator/storage/runs.py": [
        (r"column", "a counter column from the fixed map above the function"),
    ],
    "orchestrator/storage/cohorts.py": [
        (r"column", "a counter column from the fixed names above the loop"),
    ],
    "orchestrator/storage/delivery_states.py": [
        (r"column|stamp", "timestamp column names from the fixed state table"),
    ],
    "orchestrator/customers/metrics.py": [
        (r"column|present|at|stored_at", "metric column names, literals at each call"),
        (r'_add_counts\("\w+"\)', "SQL for a literal column name"),
        (r"param", "the placeholder of the rows parameter ($1 unless a CTE numbers it)"),
    ],
    "orchestrator/inapp/storage.py": [
        (r"where", "written just above from constants and $n placeholders"),
        (r"stamped", "the constant SET list of mark_read or acknowledge, $3 wrapped"),
    ],
    "orchestrator/ingest/writes.py": [
        (r"len\(args\)", "the number of the next $n placeholder"),
        (r"', '\.join\(ctes\)", "joined from the module's constant CTE texts"),
    ],
    "orchestrator/embedded/postgres.py": [
        (r"_quoted\(\w+\)", "CREATE DATABASE takes no parameter: names are quoted identifiers"),
        (r"copy", "empty, or TEMPLATE and a quoted identifier"),
    ],
    "orchestrator/customers/listing.py": [
        (r"JOURNEY_ID\.name|JOURNEY_STEP\.name", "search attribute names, constants"),
        (r"_quote\(\w+\)", "a visibility query value, quoted"),
    ],
    "orchestrator/customers/erasure.py": [
        (r"listed", "workflow ids each quoted with _quote for a visibility query"),
    ],
    "orchestrator/versions.py": [
        (r"_quote\(journey_id\)", "a visibility query value, quoted"),
    ],
}


@dataclass(frozen=True)
class Splice:
    module: str
    line: int
    piece: str


def constants_of(tree: ast.Module) -> set[str]:
    """ALL_CAPS names assigned at the top of a module."""
    names = set()
    for statement in tree.body:
        targets = []
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets = [statement.target]
        for target in targets:
            if isinstance(target, ast.Name) and CONSTANT_NAME.fullmatch(target.id):
                names.add(target.id)
    return names


def literal_texts(node: ast.expr, strings: dict[str, str]) -> list[str]:
    """The literal text of a template: a string, an f-string's parts, a named string constant."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        ]
    if isinstance(node, ast.Name) and node.id in strings:
        return [strings[node.id]]
    return []


def string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound to a string literal (templates used with ``.format``)."""
    found = {}
    for statement in tree.body:
        value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            continue
        assert isinstance(statement, ast.Assign | ast.AnnAssign)
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        found.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})
    return found


def spliced(node: ast.AST, strings: dict[str, str]) -> tuple[list[str], list[ast.expr]] | None:
    """(literal text, spliced pieces) when ``node`` builds text from parts, else None."""
    if isinstance(node, ast.JoinedStr):
        pieces = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
        return literal_texts(node, strings), pieces
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Mod)
        and literal_texts(node.left, strings)
    ):
        return literal_texts(node.left, strings), [node.right]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        sides = [node.left, node.right]
        texts = [
            t
            for side in sides
            if isinstance(side, ast.Constant)
            for t in literal_texts(side, strings)
        ]
        pieces = [s for s in sides if not isinstance(s, ast.Constant | ast.JoinedStr | ast.BinOp)]
        return texts, pieces
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and literal_texts(node.func.value, strings)
    ):
        return literal_texts(node.func.value, strings), [
            *node.args,
            *(k.value for k in node.keywords),
        ]
    return None


def unsafe_pieces(piece: ast.expr, constants: set[str]) -> Iterator[ast.expr]:
    """The parts of a spliced piece that the rule does not accept by itself."""
    if isinstance(piece, ast.Constant):
        return
    if isinstance(piece, ast.Name) and piece.id in constants:
        return
    if isinstance(piece, ast.IfExp):
        yield from unsafe_pieces(piece.body, constants)
        yield from unsafe_pieces(piece.orelse, constants)
        return
    if isinstance(piece, ast.JoinedStr):
        for value in piece.values:
            if isinstance(value, ast.FormattedValue):
                yield from unsafe_pieces(value.value, constants)
        return
    yield piece


def splices() -> Iterator[Splice]:
    """Every piece spliced into SQL-like text in the engine's modules, the safe kinds left out."""
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
            constants, strings = constants_of(tree), string_constants(tree)
            module = path.relative_to(REPO).as_posix()
            for node in ast.walk(tree):
                found = spliced(node, strings)
                if found is None or not any(SQL_LIKE.search(text) for text in found[0]):
                    continue
                line = getattr(node, "lineno", 0)
                for piece in found[1]:
                    for part in unsafe_pieces(piece, constants):
                        text = ast.get_source_segment(source, part) or ast.dump(part)
                        yield Splice(module, line, text)


def allowed(splice: Splice) -> str | None:
    for pattern, _reason in ALLOWED.get(splice.module, []):
        if re.fullmatch(pattern, splice.piece):
            return pattern
    return None


def test_sql_text_splices_only_reviewed_identifiers() -> None:
    unreviewed = [f"{s.module}:{s.line}: {s.piece}" for s in splices() if allowed(s) is None]
    assert unreviewed == [], (
        "SQL built from a value: pass it as a parameter ($n) instead, or, if it is an"
        " identifier or a placeholder, add it to ALLOWED with the reason"
    )


def test_every_allowed_entry_is_still_needed() -> None:
    used = {(s.module, allowed(s)) for s in splices()}
    stale = [
        f"{module}: {pattern}"
        for module, entries in ALLOWED.items()
        for pattern, _ in entries
        if (module, pattern) not in used
    ]
    assert stale == []


def test_the_scan_catches_a_value_spliced_into_sql(tmp_path: Path) -> None:
    # The rule at work on code written the wrong way (and the right way).
    source = (
        "LIMIT = 10\n"
        "async def find(conn, name, table):\n"
        "    await conn.fetch(f\"SELECT * FROM events WHERE name = '{name}' LIMIT {LIMIT}\")\n"
        "    await conn.fetch('SELECT * FROM ' + table)\n"
        "    await conn.fetch('SELECT * FROM events WHERE name = %s' % name)\n"
        "    await conn.fetch('DELETE FROM {} WHERE true'.format(table))\n"
        "    await conn.fetch('SELECT * FROM events WHERE name = $1', name)\n"
    )
    tree = ast.parse(source)
    constants, strings = constants_of(tree), string_constants(tree)
    found = []
    for node in ast.walk(tree):
        built = spliced(node, strings)
        if built is None or not any(SQL_LIKE.search(text) for text in built[0]):
            continue
        for piece in built[1]:
            found += [
                ast.get_source_segment(source, p) or "" for p in unsafe_pieces(piece, constants)
            ]
    assert sorted(found) == ["name", "name", "table", "table"]
