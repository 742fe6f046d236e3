"""Matching one new record against existing profiles, without re-running the batch.

A record arriving through the collection API should find its profile in
milliseconds. Running splink per record costs ~120 ms (``predict_between``);
instead candidates are retrieved through blocking keys (the same keys as the
batch blocking rules, so the same pairs are considered) and scored in process
with the Fellegi–Sunter weights of the saved model
(:func:`cdp.identity._comparisons.score_pair`, checked against splink's own
scores in the tests). The best profile is accepted when its best pair
reaches the threshold and the batch guards allow the join (names and birth
dates of the whole profile, given way to only as the batch does:
:func:`cdp.identity._clustering.guards_allow`).

:class:`ProfileIndex` keeps the keys in memory (for a long-running service,
built once from the store's features); :func:`blocking_keys` gives the keys
that a store can also hold as blind indexes, so the candidate lookup can run
against the system of record instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdp.identity._clustering import guards_allow
from cdp.identity._comparisons import FieldScore, score_pair
from cdp.identity._features import DomainCorrector, feature_row, name_frequency_bucket
from cdp.identity.probabilistic import PairScore

__all__ = ["Candidate", "MatchResult", "ProfileIndex", "blocking_keys"]

MAX_CANDIDATES_PER_KEY = 200
"""A key shared by more records than this (a placeholder e-mail, a very common name) retrieves nobody."""


def blocking_keys(row: Mapping[str, Any]) -> list[str]:
    """The candidate-retrieval keys of a feature row (mirrors ``probabilistic.BLOCKING_RULES``).

    One batch rule is left out on purpose: given name + family initial + city. A common given
    name in a large city has hundreds of holders, and each candidate brings its whole profile
    into the neighbourhood: with it, one new record against 100,000 profiles took p95 44-53 ms
    (target 50), without it 36 ms, with the same matches on the benchmark's 1,000 queries. A
    pair only that rule finds (a changed family name) waits for the next batch resolution.

    Runs for every record of every neighbourhood an arriving record is matched in, so it builds
    the (kind, parts) pairs in one tuple and skips those with a missing part.
    """
    get = row.get
    phone, account = get("phone"), get("account_id")
    family, given, dob = get("family"), get("given"), get("dob")
    postcode, city = get("postcode"), get("city")
    parts: tuple[tuple[str, tuple[Any, ...]], ...] = (
        ("email", (get("email_key"),)),
        ("phone", (phone,)),
        ("account", (account,)),
        ("name", (get("name_key"),)),
        ("family_dob", (family, dob)),
        ("given_dob", (given, dob)),
        ("family_postcode", (family, postcode)),
        ("family_initial_city", (family, get("given_initial"), city)),
        ("dob_postcode", (dob, postcode)),
        ("dob_city", (dob, city)),
        ("given_postcode", (given, postcode)),
        ("street", (get("street"),)),
    )
    if account:
        parts += (
            ("account_head_postcode", (account[:4], postcode)),
            ("account_tail_postcode", (account[-3:], postcode)),
        )
    if phone:
        parts += (("phone_head", (phone[:-2],)), ("phone_tail", (phone[:-4] + phone[-2:],)))
    return [
        kind + ":" + "|".join(map(str, values)) for kind, values in parts if None not in values and "" not in values
    ]


@dataclass(frozen=True)
class Candidate:
    profile_id: str
    record_id: str
    probability: float
    match_weight: float
    fields: tuple[FieldScore, ...]


@dataclass
class MatchResult:
    profile_id: str | None
    """The matched profile, or None: a new person."""
    best: Candidate | None
    candidates_scored: int
    refused: list[str] = field(default_factory=list)
    """Profiles that scored above the threshold but contradict the record's name or birth date."""


class ProfileIndex:
    """Existing records' feature rows by blocking key, with their profiles."""

    def __init__(self, model: Mapping[str, Any], *, threshold: float) -> None:
        self.model = model
        self.threshold = threshold
        self.domains = DomainCorrector(model.get("cdp", {}).get("domains", {}))
        self.rows: dict[str, dict[str, Any]] = {}
        self.profile_of: dict[str, str] = {}
        self.by_key: dict[str, list[str]] = defaultdict(list)
        self.name_people: dict[str, set[str]] = defaultdict(set)
        self.members: dict[str, list[str]] = defaultdict(list)

    def add_records(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Index store feature dicts (``identity_features`` output) that are linked to a profile."""
        count = 0
        for record in records:
            profile = record.get("profile_id")
            if not profile or record.get("kind") != "identity":
                continue
            self.add_row(feature_row(record, self.domains), str(profile))
            count += 1
        return count

    def add_row(self, row: dict[str, Any], profile_id: str) -> None:
        record_id = str(row["unique_id"])
        self.rows[record_id] = row
        self.profile_of[record_id] = profile_id
        self.members[profile_id].append(record_id)
        for key in blocking_keys(row):
            self.by_key[key].append(record_id)
        if row.get("name_key"):
            self.name_people[row["name_key"]].add(profile_id)

    def _frequency(self, row: dict[str, Any]) -> None:
        if row.get("name_key"):
            row["name_freq"] = name_frequency_bucket(len(self.name_people.get(row["name_key"], ())) + 1)

    def candidates(self, row: Mapping[str, Any]) -> list[str]:
        found: dict[str, None] = {}
        for key in blocking_keys(row):
            members = self.by_key.get(key, ())
            if len(members) <= MAX_CANDIDATES_PER_KEY:
                found.update(dict.fromkeys(members))
        return list(found)

    def row_for(self, record: Mapping[str, Any], row: dict[str, Any] | None = None) -> dict[str, Any]:
        """The feature row of a new record (store feature dict shape), name frequency filled in.

        ``row`` is the record's feature row if the caller already made it (it is completed in place).
        """
        row = feature_row(record, self.domains) if row is None else row
        self._frequency(row)
        return row

    def match(self, record: Mapping[str, Any]) -> MatchResult:
        """The profile ``record`` belongs to, if any (see the module docstring)."""
        row = self.row_for(record)
        return self.match_row(row)

    def match_row(self, row: Mapping[str, Any]) -> MatchResult:
        best_per_profile: dict[str, Candidate] = {}
        ids = self.candidates(row)
        for record_id in ids:
            other = self.rows[record_id]
            if other.get("name_key") and other["name_key"] == row.get("name_key"):
                other = {**other, "name_freq": row.get("name_freq")}  # one name, one frequency
            probability, weight, fields = score_pair(self.model, other, row)
            profile = self.profile_of[record_id]
            current = best_per_profile.get(profile)
            if current is None or weight > current.match_weight:
                best_per_profile[profile] = Candidate(profile, record_id, probability, weight, tuple(fields))
        ranked = sorted(best_per_profile.values(), key=lambda c: (-c.match_weight, c.profile_id))
        refused: list[str] = []
        for candidate in ranked:
            if candidate.probability < self.threshold:
                break
            if self._compatible(row, candidate):
                return MatchResult(candidate.profile_id, candidate, len(ids), refused)
            refused.append(candidate.profile_id)
        return MatchResult(None, ranked[0] if ranked else None, len(ids), refused)

    def _compatible(self, row: Mapping[str, Any], candidate: Candidate) -> bool:
        """The batch guards, with the candidate pair as the evidence that may outweigh them."""
        members = [self.rows[r] for r in self.members.get(candidate.profile_id, ())]
        fields = {f.field: (f.level, f.match_weight) for f in candidate.fields}
        pair = PairScore(
            str(row["unique_id"]), candidate.record_id, candidate.probability, candidate.match_weight, fields
        )
        return guards_allow([row], members, pair, self.threshold)

    def joins_without_contradiction(self, row: Mapping[str, Any], profile_id: str) -> bool:
        """May ``row`` join ``profile_id`` on a shared verified identifier alone (no score to outweigh a guard)?

        The batch's identifier rule: names and birth dates of the profile's records must not
        contradict the record's.
        """
        members = [self.rows[r] for r in self.members.get(profile_id, ())]
        no_evidence = PairScore(str(row["unique_id"]), "", 0.0, 0.0, {})
        return guards_allow([row], members, no_evidence, self.threshold)
