"""Turning joins into clusters: manual rules, then identifiers, then scored pairs, all guarded.

Union-find over records, in a fixed order of trust:

1. **deterministic joins** on verified identifiers, strongest first (the
   rules of :mod:`cdp.identity.deterministic`);
2. **probabilistic joins**, most probable pair first;
3. **manual merges** (people said so), applied unconditionally to the
   clusters the automatic stages built.

Every automatic join (1 and 2) must pass the same guards: the two clusters'
names must not contradict each other, their birth dates must overlap when both
have one (this is what keeps spouses, parents and children who share an
address, a landline or a family e-mail apart), no manual *never* rule may hold
between them, and neither may hold a record a person split off. Transitive
chaining therefore cannot glue a household or a common name into one giant
profile: a join is judged against everything already in both clusters.

The guards know what relatives look like, and give way where they cannot be
one: the same full name with birth dates within one generation is one person
with a mistyped date (a Jr. is a generation apart); with a shared birth date a
replaced given name or a family-name typo is a change, not a twin; an
agreeing account id lets strong remaining evidence decide (:func:`outweighs`).
The single-record matcher asks the same guards (:func:`guards_allow`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jellyfish

from cdp.identity._comparisons import probability_from_weight
from cdp.identity.deterministic import MAX_KEY_FANOUT, RULE_ORDER, NameKey, UnionFind
from cdp.identity.probabilistic import PairScore

__all__ = ["ClusterResult", "Clustering", "ManualRules", "cluster_records", "guards_allow", "outweighs"]

_MAX_NAMES = 12
ACCOUNT_AGREES = frozenset({"exact", "one keystroke apart"})
"""Account-id comparison levels that let strong evidence outweigh the name and birth-date guards."""


@dataclass(frozen=True)
class ManualRules:
    """Active manual identity rules, by record id."""

    merges: tuple[tuple[str, str], ...] = ()
    splits: frozenset[str] = frozenset()
    nevers: tuple[tuple[str, str], ...] = ()


def _close(a: str, b: str) -> bool:
    """Same name, or a typo apart: one edit (names of 3+ letters) or two (both 7+ letters)."""
    if a == b:
        return True
    shorter = min(len(a), len(b))
    if shorter < 3 or abs(len(a) - len(b)) > 2:
        return False
    distance = jellyfish.damerau_levenshtein_distance(a, b)
    return distance <= 1 or (distance == 2 and shorter >= 7)


def _given_compatible(a: str, b: str, tokens_a: frozenset[str], tokens_b: frozenset[str]) -> bool:
    if not a or not b:
        return True
    if len(a) == 1 or len(b) == 1:  # an initial
        return a[0] == b[0]
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) >= 3 and long.startswith(short):  # Chris / Christopher, Isa / Isabel
        return True
    return _close(a, b) or a in tokens_b or b in tokens_a


def names_compatible(a: NameKey, b: NameKey) -> bool:
    """Could these two names be the same person's? (typos, nicknames, initials, order; not a relative's)."""
    if (a.tokens and a.tokens == b.tokens) or not (a.given or a.family) or not (b.given or b.family):
        return True
    if a.given and a.family and _close(a.given, b.family) and _close(a.family, b.given):
        return True  # given and family swapped by a form, with a typo
    family_ok = (
        not a.family or not b.family or _close(a.family, b.family) or a.family in b.tokens or b.family in a.tokens
    )
    return family_ok and _given_compatible(a.given, b.given, a.tokens, b.tokens)


def _one_part_agrees(a: NameKey, b: NameKey) -> bool:
    """The given name is the same, or the family name is (up to a typo), or one is in the other's other field."""
    if (a.given and a.given == b.given) or (a.family and b.family and _close(a.family, b.family)):
        return True
    # a form that swapped the fields: one's given name is the other's family name
    return bool((len(a.given) > 1 and a.given == b.family) or (len(b.given) > 1 and b.given == a.family))


def _same_name(a: NameKey, b: NameKey) -> bool:
    """The full name agrees: the same tokens, or given and family names each within a typo."""
    if a.tokens and a.tokens == b.tokens:
        return True
    return (
        bool(len(a.given) > 1 and len(b.given) > 1 and a.family and b.family)
        and _close(a.given, b.given)
        and _close(a.family, b.family)
    )


GENERATION_YEARS = 15
"""Birth dates closer than this cannot be a parent's and a child's."""


def _same_generation(a: set[str], b: set[str]) -> bool:
    """Every birth date of one is within :data:`GENERATION_YEARS` of every birth date of the other."""
    years_a = [int(x[:4]) for x in a if x[:4].isdigit()]
    years_b = [int(y[:4]) for y in b if y[:4].isdigit()]
    return bool(years_a and years_b) and max(abs(x - y) for x in years_a for y in years_b) < GENERATION_YEARS


def _births_agree(a: set[str], b: set[str]) -> bool:
    """Some birth date of one is another's, or a typo of it (one character)."""
    if a & b:
        return True
    return any(jellyfish.levenshtein_distance(x, y) <= 1 for x in a for y in b)


@dataclass
class _Group:
    names: set[NameKey] = field(default_factory=set)
    births: set[str] = field(default_factory=set)
    sides: set[tuple[int, int]] = field(default_factory=set)  # (never rule, side) present
    locked: bool = False  # holds a record split off by a person

    def forbids(self, other: _Group) -> bool:
        return any((rule, 1 - side) in other.sides for rule, side in self.sides)

    def contradictions(self, other: _Group) -> frozenset[str] | None:
        """The guards a join with ``other`` fails ("date_of_birth", "name"); None if it is forbidden outright."""
        if self.locked or other.locked or self.forbids(other):
            return None
        failed: set[str] = set()
        if self.births and other.births and not _births_agree(self.births, other.births):
            # A relative with the same full name is a son or father (a Jr.), a generation apart; within
            # one generation the same name with another birth date is a mistyped or replaced date.
            same_name = any(_same_name(a, b) for a in self.names for b in other.names)
            if not (same_name and _same_generation(self.births, other.births)):
                failed.add("date_of_birth")
        if self.names and other.names and not any(names_compatible(a, b) for a in self.names for b in other.names):
            # Relatives almost never share a birth date: with one, a replaced given or family name is a change.
            shared_birth = bool(self.births & other.births)
            if not (shared_birth and any(_one_part_agrees(a, b) for a in self.names for b in other.names)):
                failed.add("name")
        return frozenset(failed)

    def absorb(self, other: _Group) -> None:
        for name in other.names:
            if len(self.names) >= _MAX_NAMES:
                break
            self.names.add(name)
        self.births |= other.births
        self.sides |= other.sides
        self.locked = self.locked or other.locked


@dataclass
class ClusterResult:
    clusters: dict[str, str]
    """record id -> cluster label (a record id)."""
    reasons: dict[str, str]
    """record id -> why it joined its cluster."""
    joins: dict[str, int]
    refused: int
    accepted: list[PairScore] = field(default_factory=list)
    """Probabilistic pairs that joined two clusters."""
    refused_pairs: list[PairScore] = field(default_factory=list)


def _name_of(row: Mapping[str, Any] | None) -> NameKey | None:
    if row is None or not (row.get("family") or row.get("given_initial")):
        return None
    given = row.get("given") or row.get("given_initial") or ""
    tokens = frozenset(str(row.get("name_key") or "").split())
    return NameKey(str(given), str(row.get("family") or ""), tokens)


def _group_of(rows: Iterable[Mapping[str, Any] | None]) -> _Group:
    """The names and birth dates (and their day/month swaps) of feature rows, for the guards."""
    group = _Group()
    for row in rows:
        name = _name_of(row)
        if name is not None and len(group.names) < _MAX_NAMES:
            group.names.add(name)
        if row is not None and row.get("dob"):
            group.births.add(str(row["dob"]))
            if row.get("dob_swapped"):
                group.births.add(str(row["dob_swapped"]))
    return group


def guards_allow(
    joining: Iterable[Mapping[str, Any]], members: Iterable[Mapping[str, Any]], pair: PairScore, threshold: float
) -> bool:
    """Would the batch guards let ``pair`` join the records ``joining`` to the cluster of ``members``?"""
    failed = _group_of(joining).contradictions(_group_of(members))
    return failed is not None and (not failed or outweighs(pair, failed, threshold))


class _Clusterer:
    def __init__(
        self, ids: Sequence[str], features: Mapping[str, Mapping[str, Any]], rules: ManualRules, threshold: float
    ) -> None:
        self.threshold = threshold
        self.uf = UnionFind(ids)
        self.groups: dict[str, _Group] = {}
        for record_id in ids:
            group = _group_of([features.get(record_id)])
            group.locked = record_id in rules.splits
            self.groups[record_id] = group
        for number, (a, b) in enumerate(rules.nevers):
            if a in self.groups and b in self.groups:
                self.groups[a].sides.add((number, 0))
                self.groups[b].sides.add((number, 1))
        self.reasons: dict[str, str] = {}
        self.joins: dict[str, int] = defaultdict(int)
        self.refused = 0

    def union(self, a: str, b: str, reason: str, *, force: bool = False, evidence: PairScore | None = None) -> bool:
        ra, rb = self.uf.find(a), self.uf.find(b)
        if ra == rb:
            return True
        if not force:
            failed = self.groups[ra].contradictions(self.groups[rb])
            if failed is None or (failed and not (evidence and outweighs(evidence, failed, self.threshold))):
                return False
        keep = self.uf.union(ra, rb)
        drop = rb if keep == ra else ra
        self.groups[keep].absorb(self.groups.pop(drop))
        self.reasons.setdefault(b, reason)
        self.joins[
            reason.rsplit(" ", maxsplit=1)[-1] if reason.startswith("same ") else reason.split(" ", maxsplit=1)[0]
        ] += 1
        return True

    def identifier_rules(self, records: Iterable[Mapping[str, Any]]) -> None:
        records = list(records)
        for rule in RULE_ORDER:
            by_digest: dict[str, list[str]] = defaultdict(list)
            for record in records:
                digest = (record.get("digests") or {}).get(rule)
                if digest:
                    by_digest[digest].append(str(record["record_id"]))
            for members in by_digest.values():
                if len(members) < 2 or len(members) > MAX_KEY_FANOUT:
                    continue
                anchors: list[str] = []
                for member in members:
                    if any(self.union(anchor, member, f"same {rule}") for anchor in anchors):
                        continue
                    if anchors:
                        self.refused += 1
                    anchors.append(member)


def outweighs(pair: PairScore, contradicted: Iterable[str], threshold: float) -> bool:
    """Does the pair's evidence *without* the ``contradicted`` fields still reach ``threshold``?

    A different birth date or name usually means a relative (a Jr. at the same
    address, a spouse on the family login), so the guard refuses it. But when
    the account id agrees (exactly or one keystroke apart) and the remaining
    fields alone would make a match, the contradicting field was mistyped or
    replaced: the model, not the guard, has the last word. Without an agreeing
    account id the guard is absolute, and a shared id with weak other
    evidence stays refused.
    """
    account = pair.fields.get("account_id")
    if account is None or account[0] not in ACCOUNT_AGREES:
        return False
    weight = pair.match_weight - sum(pair.fields.get(name, ("", 0.0))[1] for name in contradicted)
    return probability_from_weight(weight) >= threshold


class Clustering:
    """One clustering run in its stages, so the identifier stage is done once.

    Built from the records, the identifier joins (stage 1) are made at once;
    :meth:`labels` then says who is who as far as verified identifiers go (what
    name frequencies are counted over); :meth:`finish` adds the scored pairs
    and the manual merges.
    """

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        features: Mapping[str, Mapping[str, Any]],
        rules: ManualRules | None = None,
        *,
        threshold: float = 0.9,
    ) -> None:
        self.rules = rules or ManualRules()
        self.ids = [str(r["record_id"]) for r in records]
        self._clusterer = _Clusterer(self.ids, features, self.rules, threshold)
        self._clusterer.identifier_rules(records)
        self._finished = False

    def labels(self) -> dict[str, str]:
        """record id -> cluster label, as the stages so far have it."""
        find = self._clusterer.uf.find
        return {record_id: find(record_id) for record_id in self.ids}

    def finish(self, pairs: Sequence[PairScore]) -> ClusterResult:
        """Join the scored pairs, most probable first, then apply the manual merges (once only)."""
        if self._finished:
            raise RuntimeError("this clustering is finished")
        self._finished = True
        clusterer = self._clusterer
        known = set(self.ids)
        accepted: list[PairScore] = []
        refused_pairs: list[PairScore] = []
        for pair in sorted(pairs, key=lambda p: (-p.match_weight, p.left, p.right)):
            if pair.left not in known or pair.right not in known:
                continue
            if clusterer.uf.find(pair.left) == clusterer.uf.find(pair.right):
                continue
            if clusterer.union(pair.left, pair.right, f"probabilistic p={pair.probability:.4f}", evidence=pair):
                accepted.append(pair)
            else:
                clusterer.refused += 1
                refused_pairs.append(pair)
        # Last, so a merged cluster's names and birth dates never block the automatic joins of either side.
        for a, b in self.rules.merges:
            if a in known and b in known:
                clusterer.union(a, b, "manual merge", force=True)
        return ClusterResult(
            self.labels(), clusterer.reasons, dict(clusterer.joins), clusterer.refused, accepted, refused_pairs
        )


def cluster_records(
    records: Sequence[Mapping[str, Any]],
    features: Mapping[str, Mapping[str, Any]],
    pairs: Sequence[PairScore],
    rules: ManualRules | None = None,
    *,
    threshold: float = 0.9,
) -> ClusterResult:
    """Cluster ``records`` (store feature dicts) with ``features`` (record id → feature row) and scored pairs."""
    return Clustering(records, features, rules, threshold=threshold).finish(pairs)
