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
        - {consent: marketing_email}
        - {segment: newsletter_readers}

Conditions combine with ``all`` / ``any`` / ``not``, nested. Leaves:

* ``attribute``: a computed or profile attribute; ``op`` is one of ``=``,
  ``!=``, ``>``, ``>=``, ``<``, ``<=``, ``in``, ``not_in``, ``between``,
  ``exists``, ``missing`` and, for list attributes (interests),
  ``contains``, ``contains_any``, ``contains_all``. A comparison with a
  missing value is false (so ``not`` of it is true).
* ``tag``: the profile holds the tag.
* ``segment``: the profile is a member of another segment (cycles are refused).
* ``consent``: the person's consent for a purpose: ``status`` ``allowed``
  (default: granted, or not refused where no opt-in is required), ``granted``,
  ``denied``, ``withdrawn`` or ``unknown``.
* ``event``: event history. ``within_days: N`` (the last N days) or
  ``between_days: [a, b]`` (from b to a days ago), ``min_count`` (default 1),
  ``max_count``, ``revenue_over`` (each event's revenue), ``total_revenue_over``
  (their sum), ``channel``, ``category``.

User values are always bound parameters, never interpolated. Attribute names
are checked against the known columns and quoted; event conditions become
columns of one shared aggregate (computed once for every segment of a
refresh, see :mod:`cdp.segments.engine`) whose names are derived from a digest.
Errors name the file, the path inside the definition and the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cdp._exceptions import DefinitionError

INLINE_MAX_CHARS = 20_000  # a referenced segment's condition longer than this is looked up, not repeated
ROW_POSITION = "__position"  # each row's position in ``base``, as the engine registers it (and segments' members)
OPERATORS = {"=": "=", "==": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
LIST_OPERATORS = {"in": "IN", "not_in": "NOT IN"}
MEMBER_OPERATORS = ("contains", "contains_any", "contains_all")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TAG_NAME = re.compile(r"^\w[\w:.+\-]{0,99}$")
MAX_WINDOW_DAYS = 3650
CONSENT_STATUSES = ("allowed", "granted", "denied", "withdrawn", "unknown")
SEGMENT_KEYS = ("name", "description", "purpose", "where")


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    purpose: str
    where: Mapping[str, Any]
    source: str = ""

    @property
    def definition(self) -> dict[str, Any]:
        return {"description": self.description, "purpose": self.purpose, "where": dict(self.where)}


@dataclass(frozen=True)
class EventSpec:
    """One event-history measure: events named ``event`` from ``start_days`` to ``end_days`` ago.

    ``total``: a definition reads the events' total revenue too (``total_revenue_over``), not only
    their count. It is not part of the measure's identity (its ``key`` and equality): the count
    and the total are columns of the same measure, and a refresh computes the total only where
    it is read (a million profiles' column each: docs/benchmarks.md, Segments, fifteenth session).
    """

    event: str
    start_days: int
    end_days: int = 0
    revenue_over: float | None = None
    channel: str | None = None
    category: str | None = None
    total: bool = field(default=False, compare=False, repr=False)

    @property
    def key(self) -> str:
        return hashlib.sha256(repr(self).encode("utf-8")).hexdigest()[:12]

    @property
    def count_column(self) -> str:
        return f"__ev_{self.key}_n"

    @property
    def revenue_column(self) -> str:
        return f"__ev_{self.key}_r"


@dataclass(frozen=True)
class CompiledSegment:
    sql: str
    params: list[Any]
    event_specs: tuple[EventSpec, ...]
    attributes: frozenset[str]
    tags: frozenset[str]
    segments: frozenset[str]
    consents: frozenset[str]
    condition: str = "TRUE"  # the WHERE condition of ``sql`` alone (its parameters are ``params``)
    inlined: frozenset[str] = frozenset()  # segments referenced whose conditions ``condition`` repeats


def tag_column(tag: str) -> str:
    """The boolean column of ``base`` saying who holds ``tag`` (named by digest, never by the tag itself)."""
    return f"__tag_{hashlib.sha256(tag.encode('utf-8')).hexdigest()[:12]}"


def parse_segment(document: Any, *, source: str = "") -> Segment:
    if not isinstance(document, dict):
        raise DefinitionError("a segment must be a mapping", file=source)
    for key in document:
        if key not in SEGMENT_KEYS:
            raise DefinitionError(
                f"unknown field {key!r} (expected one of {list(SEGMENT_KEYS)})", file=source, path=key
            )
    name = document.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise DefinitionError("must be lower-case letters, digits and underscores", file=source, path="name")
    for key in ("description", "purpose"):
        if key in document and not isinstance(document[key], str):
            raise DefinitionError(
                f"wrong type: expected a string, got {type(document[key]).__name__}", file=source, path=key
            )
    where = document.get("where")
    if not isinstance(where, dict):
        raise DefinitionError("must be a condition mapping", file=source, path="where")
    return Segment(name, str(document.get("description", "")), str(document.get("purpose", "profiling")), where, source)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Compiler:
    def __init__(
        self,
        columns: Mapping[str, str],
        source: str,
        purposes: Collection[str] | None,
        segments: Collection[str] | None,
        inline: Mapping[str, CompiledSegment] | None = None,
    ) -> None:
        self.columns = columns  # attribute name -> kind (number | text | bool | list | time)
        self.source = source
        self.purposes = purposes
        self.segments = segments
        self.params: list[Any] = []
        self.specs: dict[str, EventSpec] = {}
        self.attributes: set[str] = set()
        self.tags: set[str] = set()
        self.references: set[str] = set()
        self.consents: set[str] = set()
        self.inline = inline or {}
        self.inlined: set[str] = set()

    def fail(self, path: str, reason: str) -> DefinitionError:
        return DefinitionError(reason, file=self.source, path=path)

    def keys(self, node: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
        for key in node:
            if key not in allowed:
                raise self.fail(f"{path}.{key}", f"unknown field {key!r} (expected one of {list(allowed)})")

    def compile(self, node: Any, path: str) -> str:
        if not isinstance(node, dict) or len(node) == 0:
            raise self.fail(path, "a condition must be a non-empty mapping")
        for key in ("all", "any"):
            if key in node:
                if len(node) != 1:
                    raise self.fail(path, f"{key!r} must stand alone in its mapping")
                items = node[key]
                if not isinstance(items, list) or not items:
                    raise self.fail(f"{path}.{key}", "wrong type: expected a non-empty list")
                joiner = " AND " if key == "all" else " OR "
                return "(" + joiner.join(self.compile(item, f"{path}.{key}[{i}]") for i, item in enumerate(items)) + ")"
        if "not" in node:
            if len(node) != 1:
                raise self.fail(path, "'not' must stand alone in its mapping")
            return f"(NOT {self.compile(node['not'], f'{path}.not')})"
        for key, method in (
            ("tag", self._tag),
            ("segment", self._segment),
            ("consent", self._consent),
            ("event", self._event),
            ("attribute", self._attribute),
        ):
            if key in node:
                return f"COALESCE({method(node, path)}, FALSE)"
        raise self.fail(
            path,
            f"unknown condition {sorted(node)} (expected all, any, not, attribute, tag, segment, consent or event)",
        )

    # -- attributes ---------------------------------------------------------------------------

    def _attribute(self, node: Mapping[str, Any], path: str) -> str:
        self.keys(node, path, ("attribute", "op", "value"))
        name = node["attribute"]
        if not isinstance(name, str) or name not in self.columns or name.startswith("__"):
            raise self.fail(f"{path}.attribute", f"unknown field {name!r}")
        self.attributes.add(name)
        op = node.get("op", "=")
        value = node.get("value")
        column = '"' + name.replace('"', '""') + '"'
        column = f"a.{column}"
        kind = self.columns[name]
        if op in ("exists", "missing"):
            if "value" in node:
                raise self.fail(f"{path}.value", f"{op} takes no value")
            if kind == "list":
                return f"(len({column}) > 0)" if op == "exists" else f"({column} IS NULL OR len({column}) = 0)"
            return f"({column} IS {'NOT ' if op == 'exists' else ''}NULL)"
        if kind == "list":
            return self._member(column, op, value, path)
        if kind == "time":
            raise self.fail(f"{path}.op", "time attributes support exists and missing; use days_since_* for windows")
        if op in MEMBER_OPERATORS:
            raise self.fail(f"{path}.op", f"{op} needs a list attribute; {name!r} is {kind}")
        if op in LIST_OPERATORS:
            if not isinstance(value, list) or not value:
                raise self.fail(f"{path}.value", f"wrong type: {op} needs a non-empty list")
            for i, item in enumerate(value):
                self._check_type(kind, item, f"{path}.value[{i}]")
            self.params.extend(value)
            return f"({column} {LIST_OPERATORS[op]} ({', '.join('?' for _ in value)}))"
        if op == "between":
            if kind != "number" or not isinstance(value, list) or len(value) != 2:
                raise self.fail(f"{path}.value", "wrong type: between needs [low, high] on a number attribute")
            for i, item in enumerate(value):
                self._check_type(kind, item, f"{path}.value[{i}]")
            if value[0] > value[1]:
                raise self.fail(f"{path}.value", "between needs low <= high")
            self.params.extend(value)
            return f"({column} BETWEEN ? AND ?)"
        if op not in OPERATORS:
            raise self.fail(f"{path}.op", f"unknown operator {op!r}")
        if kind in ("text", "bool") and OPERATORS[op] not in ("=", "<>"):
            raise self.fail(f"{path}.op", f"operator {op!r} needs a number attribute; {name!r} is {kind}")
        self._check_type(kind, value, f"{path}.value")
        self.params.append(value)
        return f"({column} {OPERATORS[op]} ?)"

    def _member(self, column: str, op: Any, value: Any, path: str) -> str:
        if op == "contains":
            if not isinstance(value, str):
                raise self.fail(f"{path}.value", f"wrong type: expected a string, got {type(value).__name__}")
            self.params.append(value)
            return f"list_contains({column}, ?)"
        if op in ("contains_any", "contains_all"):
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise self.fail(f"{path}.value", f"wrong type: {op} needs a non-empty list of strings")
            self.params.append(list(value))
            return f"{'list_has_any' if op == 'contains_any' else 'list_has_all'}({column}, ?::VARCHAR[])"
        raise self.fail(f"{path}.op", f"operator {op!r} does not apply to a list attribute (use contains…)")

    def _check_type(self, kind: str, value: Any, path: str) -> None:
        expected = {"number": "number", "bool": "true or false"}.get(kind, "string")
        ok = (
            _is_number(value)
            if kind == "number"
            else isinstance(value, bool)
            if kind == "bool"
            else isinstance(value, str)
        )
        if not ok:
            raise self.fail(path, f"wrong type: expected a {expected}, got {type(value).__name__}")

    # -- tags, segments, consent --------------------------------------------------------------

    def _tag(self, node: Mapping[str, Any], path: str) -> str:
        self.keys(node, path, ("tag",))
        tag = node["tag"]
        if not isinstance(tag, str) or not TAG_NAME.match(tag):
            raise self.fail(f"{path}.tag", "wrong type: expected a tag name (letters, digits, '_', '-', ':', '.', '+')")
        self.tags.add(tag)
        return f'(a."{tag_column(tag)}")'

    def _segment(self, node: Mapping[str, Any], path: str) -> str:
        self.keys(node, path, ("segment",))
        name = node["segment"]
        if not isinstance(name, str) or not NAME.match(name):
            raise self.fail(f"{path}.segment", "wrong type: expected a segment name")
        if self.segments is not None and name not in self.segments:
            raise self.fail(f"{path}.segment", f"unknown segment {name!r}")
        known = self.inline.get(name)
        if known is not None and len(known.condition) <= INLINE_MAX_CHARS:
            return self._inlined(name, known)
        self.references.add(name)
        self.params.append(name)
        # By row position (an integer), not by id: the members of a big segment are many strings.
        return f"(a.{ROW_POSITION} IN (SELECT m.{ROW_POSITION} FROM segmembers m WHERE m.segment = ?))"

    def _inlined(self, name: str, known: CompiledSegment) -> str:
        """The referenced segment's own condition in place of a look-up of its members: the same
        rows (a compiled condition is never NULL: each leaf is ``COALESCE``d), found in the same
        scan as the segments it is computed with rather than in a scan of its own after them."""
        self.inlined.update({name, *known.inlined})
        self.references.update(known.segments)
        self.params.extend(known.params)
        for spec in known.event_specs:
            self.specs[spec.key] = merged_spec(self.specs.get(spec.key), spec)
        self.attributes.update(known.attributes)
        self.tags.update(known.tags)
        self.consents.update(known.consents)
        return f"({known.condition})"

    def _consent(self, node: Mapping[str, Any], path: str) -> str:
        self.keys(node, path, ("consent", "status"))
        purpose = node["consent"]
        if not isinstance(purpose, str) or not NAME.match(purpose):
            raise self.fail(f"{path}.consent", "wrong type: expected a purpose name")
        if self.purposes is not None and purpose not in self.purposes:
            raise self.fail(f"{path}.consent", f"unknown purpose {purpose!r}")
        status = node.get("status", "allowed")
        if status not in CONSENT_STATUSES:
            raise self.fail(f"{path}.status", f"must be one of {list(CONSENT_STATUSES)}")
        self.consents.add(purpose)
        self.params.append(purpose)
        if status == "unknown":
            return "(a.profile_id IN (SELECT c.profile_id FROM consents c WHERE c.purpose = ? AND c.status IS NULL))"
        if status == "allowed":
            return "(a.profile_id IN (SELECT c.profile_id FROM consents c WHERE c.purpose = ? AND c.allowed))"
        self.params.append(status)
        return "(a.profile_id IN (SELECT c.profile_id FROM consents c WHERE c.purpose = ? AND c.status = ?))"

    # -- events -------------------------------------------------------------------------------

    def _window(self, node: Mapping[str, Any], path: str) -> tuple[int, int]:
        if "within_days" in node and "between_days" in node:
            raise self.fail(f"{path}.between_days", "invalid window: give within_days or between_days, not both")
        reason = f"invalid window: whole days from 1 to {MAX_WINDOW_DAYS}"
        if "between_days" in node:
            span = node["between_days"]
            if (
                not isinstance(span, list)
                or len(span) != 2
                or not all(_whole(d) for d in span)
                or not 0 <= span[0] < span[1] <= MAX_WINDOW_DAYS
            ):
                raise self.fail(f"{path}.between_days", f"invalid window: [a, b] with 0 <= a < b <= {MAX_WINDOW_DAYS}")
            return int(span[1]), int(span[0])
        days = node.get("within_days", 365)
        if not _whole(days) or not 1 <= days <= MAX_WINDOW_DAYS:
            raise self.fail(f"{path}.within_days", reason)
        return int(days), 0

    def _event(self, node: Mapping[str, Any], path: str) -> str:
        self.keys(
            node,
            path,
            (
                "event",
                "within_days",
                "between_days",
                "min_count",
                "max_count",
                "revenue_over",
                "total_revenue_over",
                "channel",
                "category",
            ),
        )
        name = node["event"]
        if not isinstance(name, str) or not name or len(name) > 200:
            raise self.fail(f"{path}.event", "wrong type: expected an event name (a non-empty string)")
        start, end = self._window(node, path)
        high = node.get("max_count")
        low = node.get("min_count", 1 if high is None else 0)  # max_count alone: "at most", including never
        for key, value in (("min_count", low), ("max_count", high)):
            if value is not None and (not _whole(value) or value < 0):
                raise self.fail(f"{path}.{key}", "wrong type: expected a whole number >= 0")
        if high is not None and high < low:
            raise self.fail(f"{path}.max_count", "must be >= min_count")
        for key in ("revenue_over", "total_revenue_over"):
            if node.get(key) is not None and not _is_number(node[key]):
                raise self.fail(f"{path}.{key}", f"wrong type: expected a number, got {type(node[key]).__name__}")
        for key in ("channel", "category"):
            if node.get(key) is not None and not isinstance(node[key], str):
                raise self.fail(f"{path}.{key}", f"wrong type: expected a string, got {type(node[key]).__name__}")
        over = node.get("revenue_over")
        spec = EventSpec(
            name,
            start,
            end,
            None if over is None else float(over),
            node.get("channel"),
            node.get("category"),
            total=node.get("total_revenue_over") is not None,
        )
        self.specs[spec.key] = merged_spec(self.specs.get(spec.key), spec)
        clauses = [f'(a."{spec.count_column}" >= ?)']
        self.params.append(low)
        if high is not None:
            clauses.append(f'(a."{spec.count_column}" <= ?)')
            self.params.append(high)
        if node.get("total_revenue_over") is not None:
            clauses.append(f'(a."{spec.revenue_column}" > ?)')
            self.params.append(float(node["total_revenue_over"]))
        return "(" + " AND ".join(clauses) + ")"


def compile_segment(
    segment: Segment,
    columns: Mapping[str, str],
    *,
    purposes: Collection[str] | None = None,
    segments: Collection[str] | None = None,
    root: str = "where",
    inline: Mapping[str, CompiledSegment] | None = None,
) -> CompiledSegment:
    """SQL selecting ``profile_id`` from ``base a`` (plus the ``segmembers`` and ``consents`` tables).

    ``base`` holds the attributes, one count and one revenue column per event
    spec (:attr:`CompiledSegment.event_specs`) and one boolean column per tag
    (:func:`tag_column`), all computed once per snapshot by the engine. A
    reference to a segment in ``inline`` repeats that segment's condition (when
    it is at most ``INLINE_MAX_CHARS`` long); any other reads its members from
    ``segmembers``, so it must have been evaluated first.
    """
    compiler = _Compiler(columns, segment.source, purposes, segments, inline)
    condition = compiler.compile(segment.where, root)
    return CompiledSegment(
        f"SELECT a.profile_id FROM base a WHERE {condition}",
        compiler.params,
        tuple(compiler.specs.values()),
        frozenset(compiler.attributes),
        frozenset(compiler.tags),
        frozenset(compiler.references),
        frozenset(compiler.consents),
        condition,
        frozenset(compiler.inlined),
    )


def walk_leaves(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every leaf condition (attribute, tag, segment, consent, event) of a definition, malformed parts skipped."""
    if not isinstance(node, dict):
        return
    if any(k in node for k in ("all", "any", "not")):
        for key in ("all", "any"):
            if isinstance(node.get(key), list):
                for item in node[key]:
                    yield from walk_leaves(item)
        if "not" in node:
            yield from walk_leaves(node["not"])
        return
    yield node


def merged_spec(known: EventSpec | None, spec: EventSpec) -> EventSpec:
    """One measure asked for twice: its total is computed if either asks for it."""
    if known is None or known.total or not spec.total:
        return known or spec
    return replace(known, total=True)


def merge_specs(specs: Iterable[EventSpec]) -> list[EventSpec]:
    """The distinct measures of ``specs``, in order, each with its total if any of its copies reads it."""
    merged: dict[str, EventSpec] = {}
    for spec in specs:
        merged[spec.key] = merged_spec(merged.get(spec.key), spec)
    return list(merged.values())


def spec_columns_read(spec: EventSpec) -> tuple[str, ...]:
    """The columns of ``base`` a definition reads for the measure."""
    return (spec.count_column, spec.revenue_column) if spec.total else (spec.count_column,)


def event_specs(wheres: Iterable[Any]) -> list[EventSpec]:
    """The event-history specs of definitions, to compute with the attributes.

    Invalid leaves are skipped here: compiling the definition reports them with their path.
    """
    compiler = _Compiler({}, "", None, None)
    for where in wheres:
        for leaf in walk_leaves(where):
            if "event" in leaf:
                with contextlib.suppress(DefinitionError):
                    compiler._event(leaf, "where")
    return list(compiler.specs.values())


def _references(node: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(node, dict):
        found: list[tuple[str, str]] = []
        if isinstance(node.get("segment"), str):
            found.append((node["segment"], f"{path}.segment"))
        for key in ("all", "any"):
            if isinstance(node.get(key), list):
                for i, item in enumerate(node[key]):
                    found.extend(_references(item, f"{path}.{key}[{i}]"))
        if "not" in node:
            found.extend(_references(node["not"], f"{path}.not"))
        return found
    return []


def order_segments(segments: Sequence[Segment]) -> list[Segment]:
    """Segments in dependency order (a referenced segment first); refuses cycles and unknown references."""
    by_name: dict[str, Segment] = {}
    for segment in segments:
        if segment.name in by_name:
            raise DefinitionError(f"duplicate segment name {segment.name!r}", file=segment.source, path="name")
        by_name[segment.name] = segment
    ordered: list[Segment] = []
    state: dict[str, str] = {}

    def visit(segment: Segment, trail: list[str]) -> None:
        if state.get(segment.name) == "done":
            return
        state[segment.name] = "visiting"
        for target, path in _references(segment.where, "where"):
            if target not in by_name:
                raise DefinitionError(f"unknown segment {target!r}", file=segment.source, path=path)
            if state.get(target) == "visiting":
                cycle = (
                    [*trail[trail.index(target) :], segment.name, target] if target in trail else [segment.name, target]
                )
                raise DefinitionError(f"cyclic reference: {' -> '.join(cycle)}", file=segment.source, path=path)
            visit(by_name[target], [*trail, segment.name])
        state[segment.name] = "done"
        ordered.append(segment)

    for segment in segments:
        visit(segment, [])
    return ordered


def column_kinds(dtypes: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Attribute name -> kind from ``(name, str(polars dtype))`` pairs."""
    out: dict[str, str] = {}
    for name, dtype in dtypes:
        lowered = dtype.lower()
        if lowered.startswith(("enum", "categorical", "str")):  # an Enum's repr lists its values
            out[name] = "text"
        elif lowered.startswith("list"):
            out[name] = "list"
        elif lowered.startswith("bool"):
            out[name] = "bool"
        elif lowered.startswith(("datetime", "date", "time", "duration")):
            out[name] = "time"
        elif any(k in lowered for k in ("int", "float", "decimal")):
            out[name] = "number"
        else:
            out[name] = "text"
    return out
