"""Deterministic identity rules: which verified identifiers join records, and the name guard.

Records that share a verified identifier (same account id, device id via
``alias``/identify, loyalty card, normalised email, E.164 phone) are joined,
strongest identifier first (``RULE_ORDER``). Shared identifiers are common in
real data (family emails, household landlines, cashiers' placeholder emails,
shared devices), so a join also needs names that do not contradict each other
(``NameKey.compatible``). The clustering itself, with birth-date guards and
probabilistic joins, is in :mod:`cdp.identity._clustering`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
