"""Measuring identity resolution against ground truth: pairwise and cluster-level.

A resolver is only as good as the numbers that say so, and one number is not
enough: pairwise precision/recall can look fine while transitive chaining
glues a few hundred people into one giant profile, so cluster-level figures
(B-cubed precision/recall, the largest cluster, exact-cluster share) are
reported alongside. Everything here is counts and ratios: no identifier value
is ever read, only record ids, cluster labels and entity labels.

Labels are a CSV ``source,record_id,entity_id`` where ``record_id`` is the
source's own record id (``source_record_id`` in the store). The demo
generator calls the web source ``web``; it is stored as ``website``.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from cdp._exceptions import ConfigurationError

__all__ = ["SOURCE_ALIASES", "Metrics", "evaluate_assignment", "load_labels", "scoped_assignment"]

SOURCE_ALIASES: Mapping[str, str] = {"web": "website"}
"""Label source names that differ from the names records are stored under."""

Scope = Literal["identity", "resolved"]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Metrics:
    """Pairwise and cluster-level figures of one resolution against the truth."""

    records: int
    """Records counted (present in both the assignment and the labels)."""
    unlabelled: int
    """Records in the assignment without a label (not counted)."""
    predicted_pairs: int
    true_pairs: int
    true_positive_pairs: int
    precision: float
    recall: float
    f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    clusters: int
    entities: int
    largest_cluster: int
    largest_entity: int
    exact_clusters: float
    """Share of true entities reproduced exactly as one predicted cluster."""

    def as_rows(self) -> list[tuple[str, str]]:
        """(name, formatted value) rows for tables and benchmark output."""
        return [
            ("records counted", f"{self.records:,}"),
            ("records without a label (not counted)", f"{self.unlabelled:,}"),
            ("pairwise precision", f"{self.precision:.4f}"),
            ("pairwise recall", f"{self.recall:.4f}"),
            ("pairwise F1", f"{self.f1:.4f}"),
            ("B-cubed precision", f"{self.bcubed_precision:.4f}"),
            ("B-cubed recall", f"{self.bcubed_recall:.4f}"),
            ("B-cubed F1", f"{self.bcubed_f1:.4f}"),
            ("predicted pairs / true pairs", f"{self.predicted_pairs:,} / {self.true_pairs:,}"),
            ("clusters / true entities", f"{self.clusters:,} / {self.entities:,}"),
            ("largest cluster / largest entity", f"{self.largest_cluster:,} / {self.largest_entity:,}"),
            ("entities reproduced exactly", f"{self.exact_clusters:.4f}"),
        ]


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def evaluate_assignment(predicted: Mapping[K, Hashable], truth: Mapping[K, Hashable]) -> Metrics:
    """Compare ``record -> predicted cluster`` with ``record -> true entity``.

    Only records present in both mappings are counted. A record whose
    predicted cluster is ``None`` is a singleton.
    """
    keys = [k for k in predicted if k in truth]
    unlabelled = sum(1 for k in predicted if k not in truth)
    cluster_of: dict[K, Hashable] = {}
    for k in keys:
        label = predicted[k]
        cluster_of[k] = ("singleton", k) if label is None else ("cluster", label)
    cluster_sizes = Counter(cluster_of.values())
    entity_sizes = Counter(truth[k] for k in keys)
    both = Counter((cluster_of[k], truth[k]) for k in keys)
    predicted_pairs = sum(_pairs(n) for n in cluster_sizes.values())
    true_pairs = sum(_pairs(n) for n in entity_sizes.values())
    tp = sum(_pairs(n) for n in both.values())
    precision = tp / predicted_pairs if predicted_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    n = len(keys)
    # B-cubed: per record, the share of its cluster that is its entity and vice versa.
    bp = sum(count * count / cluster_sizes[c] for (c, _e), count in both.items()) / n if n else 1.0
    br = sum(count * count / entity_sizes[e] for (_c, e), count in both.items()) / n if n else 1.0
    members: dict[Hashable, set[Hashable]] = defaultdict(set)
    for (c, e), _count in both.items():
        members[e].add(c)
    exact = sum(
        1
        for e, clusters in members.items()
        if len(clusters) == 1 and cluster_sizes[next(iter(clusters))] == entity_sizes[e]
    )
    return Metrics(
        records=n,
        unlabelled=unlabelled,
        predicted_pairs=predicted_pairs,
        true_pairs=true_pairs,
        true_positive_pairs=tp,
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        bcubed_precision=bp,
        bcubed_recall=br,
        bcubed_f1=_f1(bp, br),
        clusters=len(cluster_sizes),
        entities=len(entity_sizes),
        largest_cluster=max(cluster_sizes.values(), default=0),
        largest_entity=max(entity_sizes.values(), default=0),
        exact_clusters=exact / len(entity_sizes) if entity_sizes else 1.0,
    )


def load_labels(path: Path, aliases: Mapping[str, str] = SOURCE_ALIASES) -> dict[tuple[str, str], str]:
    """``(source, source_record_id) -> entity_id`` from a labels CSV (``source,record_id,entity_id``)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"source", "record_id", "entity_id"} - set(reader.fieldnames or ())
            if missing:
                raise ConfigurationError(f"{path}: labels file lacks column(s) {', '.join(sorted(missing))}")
            return {(aliases.get(row["source"], row["source"]), row["record_id"]): row["entity_id"] for row in reader}
    except OSError as exc:
        raise ConfigurationError(f"cannot read labels file {path}: {exc.strerror}") from exc


def scoped_assignment(
    records: Iterable[Mapping[str, object]], scope: Scope = "identity"
) -> dict[tuple[str, str], str | None]:
    """``(source, source_record_id) -> profile id`` for the records a scope counts.

    ``identity``: records of kind "identity" (they carry at least one
    identifier), linked or not. ``resolved``: those plus every other record
    the resolver linked to a profile (anonymous web calls joined through their
    device). Records with neither are left out: no method could place them.
    """
    out: dict[tuple[str, str], str | None] = {}
    for record in records:
        profile = record.get("profile_id")
        if record.get("kind") == "identity" or (scope == "resolved" and profile):
            out[(str(record["source"]), str(record["source_record_id"]))] = str(profile) if profile else None
    return out
