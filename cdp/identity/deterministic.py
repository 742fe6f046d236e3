"""Deterministic identity rules: verified identifiers, guarded against glue.

Records that share a verified identifier (same account id, device id via
``alias``/identify, loyalty card, normalised email, E.164 phone) are joined,
strongest identifier first. Shared identifiers are common in real data
(family emails, household landlines, cashiers' placeholder emails, shared
devices), so two clusters are joined only if their names and birth dates do
not contradict each other. This keeps one real person in one profile without
gluing a household together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RULE_ORDER: tuple[str, ...] = ("user_id", "anonymous_id", "loyalty_id", "email", "phone")
MAX_KEY_FANOUT = 50  # an identifier on more records than this is a placeholder, not a person


def within_one_edit(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1 or min(len(a), len(b)) < 4:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :] or (
            i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
        )
    return a[i:] == b[i + 1 :]


@dataclass(frozen=True)
class NameKey:
    given: str
    family: str
    tokens: frozenset[str]

    def compatible(self, other: NameKey) -> bool:
        if not (self.given or self.family) or not (other.given or other.family):
            return True
        same_tokens = bool(self.tokens) and self.tokens == other.tokens
        if same_tokens:
            return True
        family_ok = (
            not self.family
            or not other.family
            or within_one_edit(self.family, other.family)
            or self.family in other.tokens
            or other.family in self.tokens
        )
        if not family_ok:
            return False
        if not self.given or not other.given:
            return True
        g1, g2 = self.given, other.given
        if len(g1) == 1 or len(g2) == 1:
            return g1[0] == g2[0]
        return within_one_edit(g1, g2) or g1 in other.tokens or g2 in self.tokens


@dataclass
class Cluster:
    names: set[NameKey] = field(default_factory=set)
    births: set[str] = field(default_factory=set)

    def compatible(self, other: Cluster) -> bool:
        if self.births and other.births and not (self.births & other.births):
            return False
        if self.names and other.names:
            return any(a.compatible(b) for a in self.names for b in other.names)
        return True

    def absorb(self, other: Cluster) -> None:
        if len(self.names) < 12:
            self.names |= other.names
        self.births |= other.births


class UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {item: item for item in items}

    def find(self, item: str) -> str:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        keep, drop = (ra, rb) if ra < rb else (rb, ra)
        self.parent[drop] = keep
        return keep


def name_key(record: Mapping[str, Any], normalize_name: Callable[..., Any]) -> NameKey | None:
    given, family = record.get("given_name"), record.get("family_name")
    if not given and not family:
        return None
    normalised = normalize_name(given, family, country=record.get("country"))
    if normalised is None:
        return None
    return NameKey(normalised.given_canonical or normalised.given, normalised.family, frozenset(normalised.tokens))


@dataclass
class DeterministicResult:
    clusters: dict[str, str]  # record id -> cluster label (a record id)
    reasons: dict[str, str]  # record id -> rule that joined it
    joins: dict[str, int]
    refused: int


def resolve(
    records: Sequence[Mapping[str, Any]], normalize_name: Callable[..., Any], *, rules: Sequence[str] = RULE_ORDER
) -> DeterministicResult:
    """Cluster records by verified identifiers with name/birth-date guards."""
    ids = [str(r["record_id"]) for r in records]
    uf = UnionFind(ids)
    clusters: dict[str, Cluster] = {}
    for record in records:
        cluster = Cluster()
        key = name_key(record, normalize_name)
        if key is not None:
            cluster.names.add(key)
        if record.get("date_of_birth"):
            cluster.births.add(str(record["date_of_birth"]))
        clusters[str(record["record_id"])] = cluster
    reasons: dict[str, str] = {}
    joins: dict[str, int] = defaultdict(int)
    refused = 0
    for rule in rules:
        by_digest: dict[str, list[str]] = defaultdict(list)
        for record in records:
            digest = record.get("digests", {}).get(rule)
            if digest:
                by_digest[digest].append(str(record["record_id"]))
        for members in by_digest.values():
            if len(members) < 2 or len(members) > MAX_KEY_FANOUT:
                continue
            roots: list[str] = []
            for member in members:
                root = uf.find(member)
                placed = False
                for position, seen in enumerate(roots):
                    anchor = uf.find(seen)
                    if anchor == root or clusters[anchor].compatible(clusters[root]):
                        if anchor != root:
                            keep = uf.union(anchor, root)
                            drop = root if keep == anchor else anchor
                            clusters[keep].absorb(clusters.pop(drop))
                            reasons.setdefault(member, f"same {rule}")
                            joins[rule] += 1
                            roots[position] = keep
                        placed = True
                        break
                if not placed:
                    if roots:
                        refused += 1
                    roots.append(root)
    labels = {record_id: uf.find(record_id) for record_id in ids}
    return DeterministicResult(labels, reasons, dict(joins), refused)
