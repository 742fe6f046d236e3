"""Declarative segment definitions, validated and compiled to parameterised SQL.

A segment is YAML or JSON::

    name: active_high_value
    description: Bought twice and spent over 200 in the last year
    purpose: marketing_email
    where:
      all:
        - {attribute: orders_365d, op: ">=", value: 2}
        - any:
            - {attribute: revenue_365d, op: ">", value: 200}
            - {tag: "value:high"}
        - not: {attribute: country, op: in, value: [CN]}
        - {event: "Order Completed", within_days: 90, min_count: 3, revenue_over: 100}

Conditions combine with ``all`` / ``any`` / ``not``, nested. User values are
always bound parameters, never interpolated; attribute names are checked
against the known columns and quoted. Errors name the file, the path inside
the definition and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cdp._exceptions import DefinitionError

OPERATORS = {"=": "=", "==": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
LIST_OPERATORS = {"in": "IN", "not_in": "NOT IN"}
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_WINDOW_DAYS = 3650


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    purpose: str
    where: Mapping[str, Any]
    source: str = ""


@dataclass(frozen=True)
class CompiledSegment:
    sql: str
    params: list[Any]
    event_windows: tuple[tuple[str, int, float | None], ...]


def parse_segment(document: Any, *, source: str = "") -> Segment:
    if not isinstance(document, dict):
        raise DefinitionError("a segment must be a mapping", file=source)
    for key in document:
        if key not in ("name", "description", "purpose", "where"):
            raise DefinitionError(f"unknown key {key!r}", file=source, path=key)
    name = document.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise DefinitionError("must be lower-case letters, digits and underscores", file=source, path="name")
    where = document.get("where")
    if not isinstance(where, dict):
        raise DefinitionError("must be a condition mapping", file=source, path="where")
    return Segment(name, str(document.get("description", "")), str(document.get("purpose", "profiling")), where, source)


class _Compiler:
    def __init__(self, columns: Mapping[str, str], source: str) -> None:
        self.columns = columns  # attribute name -> kind ("number" | "text" | "time")
        self.source = source
        self.params: list[Any] = []
        self.windows: list[tuple[str, int, float | None]] = []

    def fail(self, path: str, reason: str) -> DefinitionError:
        return DefinitionError(reason, file=self.source, path=path)

    def compile(self, node: Any, path: str) -> str:
        if not isinstance(node, dict) or len(node) == 0:
            raise self.fail(path, "a condition must be a non-empty mapping")
        if "all" in node or "any" in node:
            key = "all" if "all" in node else "any"
            if len(node) != 1:
                raise self.fail(path, f"{key!r} must stand alone in its mapping")
            items = node[key]
            if not isinstance(items, list) or not items:
                raise self.fail(f"{path}.{key}", "must be a non-empty list")
            joiner = " AND " if key == "all" else " OR "
            return "(" + joiner.join(self.compile(item, f"{path}.{key}[{i}]") for i, item in enumerate(items)) + ")"
        if "not" in node:
            if len(node) != 1:
                raise self.fail(path, "'not' must stand alone in its mapping")
            return f"(NOT {self.compile(node['not'], f'{path}.not')})"
        if "tag" in node:
            return self._tag(node, path)
        if "event" in node:
            return self._event(node, path)
        if "attribute" in node:
            return self._attribute(node, path)
        raise self.fail(path, f"unknown condition {sorted(node)} (expected all, any, not, attribute, tag or event)")

    def _attribute(self, node: Mapping[str, Any], path: str) -> str:
        for key in node:
            if key not in ("attribute", "op", "value"):
                raise self.fail(f"{path}.{key}", f"unknown key {key!r}")
        name = node["attribute"]
        if name not in self.columns:
            raise self.fail(f"{path}.attribute", f"unknown field {name!r}")
        op = node.get("op", "=")
        value = node.get("value")
        column = f'a."{name}"'
        kind = self.columns[name]
        if op in ("exists", "missing"):
            return f"({column} IS {'NOT ' if op == 'exists' else ''}NULL)"
        if op in LIST_OPERATORS:
            if not isinstance(value, list) or not value:
                raise self.fail(f"{path}.value", f"{op} needs a non-empty list")
            for item in value:
                self._check_type(kind, item, f"{path}.value")
            self.params.extend(value)
            return f"({column} {LIST_OPERATORS[op]} ({', '.join('?' for _ in value)}))"
        if op not in OPERATORS:
            raise self.fail(f"{path}.op", f"unknown operator {op!r}")
        self._check_type(kind, value, f"{path}.value")
        self.params.append(value)
        return f"({column} {OPERATORS[op]} ?)"

    def _check_type(self, kind: str, value: Any, path: str) -> None:
        ok = (
            isinstance(value, int | float) and not isinstance(value, bool)
            if kind == "number"
            else isinstance(value, str)
        )
        if not ok:
            raise self.fail(
                path, f"wrong type: expected a {'number' if kind == 'number' else 'string'}, got {type(value).__name__}"
            )

    def _tag(self, node: Mapping[str, Any], path: str) -> str:
        for key in node:
            if key != "tag":
                raise self.fail(f"{path}.{key}", f"unknown key {key!r}")
        if not isinstance(node["tag"], str):
            raise self.fail(f"{path}.tag", "must be a string")
        self.params.append(node["tag"])
        return "(EXISTS (SELECT 1 FROM tags t WHERE t.profile_id = a.profile_id AND t.tag = ?))"

    def _event(self, node: Mapping[str, Any], path: str) -> str:
        for key in node:
            if key not in ("event", "within_days", "min_count", "max_count", "revenue_over"):
                raise self.fail(f"{path}.{key}", f"unknown key {key!r}")
        name = node["event"]
        if not isinstance(name, str):
            raise self.fail(f"{path}.event", "must be a string")
        days = node.get("within_days", 365)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_WINDOW_DAYS:
            raise self.fail(
                f"{path}.within_days", f"invalid window: must be a whole number of days from 1 to {MAX_WINDOW_DAYS}"
            )
        low = node.get("min_count", 1)
        high = node.get("max_count")
        over = node.get("revenue_over")
        for key, value in (("min_count", low), ("max_count", high)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise self.fail(f"{path}.{key}", "must be a whole number >= 0")
        if over is not None and (not isinstance(over, int | float) or isinstance(over, bool)):
            raise self.fail(f"{path}.revenue_over", "must be a number")
        self.windows.append((name, days, None if over is None else float(over)))
        count = (
            "(SELECT count(*) FROM events e WHERE e.profile_id = a.profile_id AND e.event_name = ? "
            "AND e.occurred_at >= ? AND (? IS NULL OR e.revenue > ?))"
        )
        self.params.extend([name, {"days": days}, over, over])
        clauses = [f"{count} >= ?"]
        self.params.append(low)
        if high is not None:
            self.params.extend([name, {"days": days}, over, over, high])
            clauses.append(f"{count} <= ?")
        return "(" + " AND ".join(clauses) + ")"


def compile_segment(segment: Segment, columns: Mapping[str, str]) -> CompiledSegment:
    """SQL selecting ``profile_id`` from ``attrs a`` (plus ``tags`` and ``events`` tables)."""
    compiler = _Compiler(columns, segment.source)
    condition = compiler.compile(segment.where, "where")
    return CompiledSegment(
        f"SELECT a.profile_id FROM attrs a WHERE {condition} ORDER BY a.profile_id",
        compiler.params,
        tuple(compiler.windows),
    )


def column_kinds(dtypes: Sequence[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, dtype in dtypes:
        lowered = dtype.lower()
        out[name] = "number" if any(k in lowered for k in ("int", "float", "decimal")) else "text"
    return out
