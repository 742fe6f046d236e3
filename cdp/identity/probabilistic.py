"""Probabilistic record linkage (Fellegi–Sunter) with splink on an in-memory DuckDB.

Deterministic rules only join records that share a verified identifier; the
same person also appears with a new phone, a second e-mail, a typo, a
nickname or in another script. Here splink scores candidate pairs on all
fields at once: u probabilities by random sampling, m probabilities by
expectation maximisation on two blockings (same e-mail key, same phone), the
prior from the pairs those two rules find. The trained model is saved as
splink JSON (parameters only, no personal data) at ``settings.model_path``
and reused by the incremental matcher.

DuckDB runs in memory only: no database file ever holds identifiers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from cdp._memory_duckdb import is_out_of_memory, memory_only_connection, refusing_to_spill
from cdp.identity._comparisons import COMPARISONS, splink_comparisons
from cdp.identity._features import FEATURE_COLUMNS

__all__ = [
    "BLOCKING_RULES",
    "MODEL_VERSION",
    "PairScore",
    "load_model",
    "predict_pairs",
    "save_model",
    "train_model",
]


def _definition_fingerprint() -> str:
    """A saved model is only valid for the comparisons and blocking rules it was trained with."""
    import hashlib

    # label, SQL and null flag only: a level's Python predicate has no stable text form.
    levels = [(c.name, [(lv.label, lv.sql, lv.is_null) for lv in c.levels]) for c in COMPARISONS]
    spec = repr(levels) + repr(BLOCKING_RULES)
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


MODEL_VERSION = "cdp-identity-1"  # completed with the definition fingerprint below

BLOCKING_RULES: tuple[str, ...] = (
    "l.email_key = r.email_key",
    "l.phone = r.phone",
    "l.account_id = r.account_id",
    "l.name_key = r.name_key",
    "l.family = r.family AND l.dob = r.dob",
    "l.given = r.given AND l.dob = r.dob",
    "l.family = r.family AND l.postcode = r.postcode",
    "l.family = r.family AND l.given_initial = r.given_initial AND l.city = r.city",
    # both names changed or mistyped: the person's other stable facts
    "l.dob = r.dob AND l.postcode = r.postcode",
    "l.dob = r.dob AND l.city = r.city",
    "l.given = r.given AND l.postcode = r.postcode",
    "l.given = r.given AND left(l.family, 1) = left(r.family, 1) AND l.city = r.city",
    "l.street = r.street",
    "l.postcode = r.postcode AND left(l.account_id, 4) = left(r.account_id, 4)",
    "l.postcode = r.postcode AND right(l.account_id, 3) = right(r.account_id, 3)",
    # one mistyped digit among the last four: either the last two or the two before them agree
    "substr(l.phone, 1, length(l.phone) - 2) = substr(r.phone, 1, length(r.phone) - 2)",
    "substr(l.phone, 1, length(l.phone) - 4) || right(l.phone, 2) = "
    "substr(r.phone, 1, length(r.phone) - 4) || right(r.phone, 2)",
)
MODEL_VERSION = f"cdp-identity-1-{_definition_fingerprint()}"
"""Pairs meeting any rule are scored (each pair once)."""

TRAINING_BLOCKS: tuple[str, ...] = (
    "l.email_key = r.email_key",
    "l.phone = r.phone",
    "l.dob = r.dob",
    "l.name_key = r.name_key",
)
"""EM sessions: each estimates m for every comparison except the one it blocks on (a session
whose key no pair shares, such as e-mail in a source without e-mail, is skipped)."""

PRIOR_RULES: tuple[str, ...] = (
    "l.email_key = r.email_key",
    "l.phone = r.phone",
    "l.name_key = r.name_key AND l.dob = r.dob",
)
"""Near-certain rules whose pairs (at an assumed recall) estimate the prior match probability."""


@dataclass(frozen=True)
class PairScore:
    left: str
    right: str
    probability: float
    match_weight: float
    fields: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Per compared field: (level label, match weight)."""


def _quiet_splink() -> None:
    for name in ("splink",):
        logging.getLogger(name).setLevel(logging.ERROR)


def _arrow(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.table({c: pa.array([r.get(c) for r in rows], type=pa.string()) for c in FEATURE_COLUMNS})


def _settings(model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if model is not None:
        settings = {k: v for k, v in model.items() if k != "cdp"}
    else:
        settings = {
            "link_type": "dedupe_only",
            "unique_id_column_name": "unique_id",
            "comparisons": splink_comparisons(),
            "probability_two_random_records_match": 1e-4,
            "max_iterations": 20,
            "em_convergence": 0.0001,
        }
    settings["blocking_rules_to_generate_predictions"] = [
        {"blocking_rule": rule, "sql_dialect": "duckdb"} for rule in BLOCKING_RULES
    ]
    settings["retain_matching_columns"] = True  # splink 5 keeps the gamma (level) columns only with these
    settings["retain_intermediate_calculation_columns"] = False
    return settings


def _linker(rows: Sequence[Mapping[str, Any]], model: Mapping[str, Any] | None = None, *, threads: int = 0) -> Any:
    from splink import DuckDBAPI, Linker

    _quiet_splink()
    # In memory only: never a DuckDB file, nor temporary files when memory runs short (see cdp._memory_duckdb).
    threads = threads or max(1, min(2, os.cpu_count() or 1))
    db = DuckDBAPI(connection=memory_only_connection(threads=threads))
    sdf = db.register(_arrow(rows), dataset_display_name="identity_features")
    return Linker(sdf, _settings(model), log_level=None)


def train_model(rows: Sequence[Mapping[str, Any]], *, seed: int = 7, max_pairs: float = 5e6) -> dict[str, Any]:
    """Train the model on ``rows`` (feature rows); returns the splink settings with parameters.

    Raises :class:`~cdp._exceptions.ResourceExhausted` when DuckDB runs out of memory (a
    training step that fails for lack of pairs is skipped; one that fails for lack of memory is not).
    """
    with refusing_to_spill("training the identity model"):
        return _train_model(rows, seed=seed, max_pairs=max_pairs)


def _train_model(rows: Sequence[Mapping[str, Any]], *, seed: int, max_pairs: float) -> dict[str, Any]:
    from splink.internals.exceptions import SplinkException

    # Record ids are random, so order the rows by content: the seeded sampling then sees the same
    # data in the same order on every run, and training is reproducible.
    ordered = sorted(rows, key=lambda r: tuple(str(r.get(k)) for k in sorted(r) if k != "unique_id"))
    # Splink orients each candidate pair by unique_id, so random ids would change which side of
    # a pair is "left" from run to run; training works on content-ordered ids instead.
    ordered = [{**r, "unique_id": f"t{i:09d}"} for i, r in enumerate(ordered)]
    # One DuckDB thread while training: seeded sampling is only repeatable single-threaded.
    linker = _linker(ordered, threads=1)
    training = linker.training
    sessions = 0
    failures = (SplinkException, ValueError, ZeroDivisionError)

    @contextlib.contextmanager
    def skipped_if_no_pairs() -> Iterator[None]:
        try:
            yield
        except failures as exc:
            if is_out_of_memory(exc):  # splink wraps DuckDB's error: not a step to skip
                raise

    with skipped_if_no_pairs():  # no pair meets a prior rule: the fallback below applies
        training.estimate_probability_two_random_records_match(list(PRIOR_RULES), recall=0.7)
    with skipped_if_no_pairs():  # too few records: every level stays at "no evidence" below
        training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    for rule in TRAINING_BLOCKS:
        with skipped_if_no_pairs():  # no pair shares this key (a tiny store): the other session still trains
            training.estimate_parameters_using_expectation_maximisation(rule, estimate_without_term_frequencies=True)
            sessions += 1
    model: dict[str, Any] = linker.misc.save_model_to_json()
    prior = _number(model.get("probability_two_random_records_match"))
    if prior is None or not 0 < prior < 0.5:  # no pair met a prior rule: about one duplicate per record
        model["probability_two_random_records_match"] = min(0.5, 1.0 / max(2, len(rows)))
    _complete_parameters(model)
    model["cdp"] = {"version": MODEL_VERSION, "records": len(rows), "em_sessions": sessions}
    return model


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _complete_parameters(model: dict[str, Any]) -> None:
    """Give every level explicit m and u, so splink and the in-process scorer use the same numbers.

    A level never seen among random pairs gets u = 1e-6 (what splink assumes);
    one never seen among matches gets m = u: it counts as no evidence.

    Random sampling measures how often *any* two records agree, and some random
    pairs are the same person: agreement among all pairs is λ·m + (1 − λ)·u, with
    λ the prior. For a near-unique identifier (an account number, a rare full
    name, a street line) in a store where people have several records, those
    duplicates are most of what sampling sees, and u came out several times too
    high (on FEBRL the account id's u was 97 % duplicates). u is therefore the
    sampled rate less the expected matches, u = (u_sampled − λ·m) / (1 − λ),
    and never below the 1e-6 of a level no random pair reached.
    """
    present = {c["output_column_name"] for c in model["comparisons"]}
    for index, comparison in enumerate(splink_comparisons()):
        if comparison["output_column_name"] not in present:  # splink leaves out a field no record has
            model["comparisons"].insert(index, comparison)
    prior = _number(model.get("probability_two_random_records_match")) or 0.0
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            u = _number(level.get("u_probability"))
            m = _number(level.get("m_probability"))
            if u is not None and m is not None and m > 0 and 0 < prior < 0.5:
                u = (u - prior * m) / (1.0 - prior)
            u = max(u, _UNSEEN) if u is not None else _UNSEEN
            level["u_probability"] = u
            level["m_probability"] = u if m is None or m <= 0 else m


_UNSEEN = 1e-6
"""u of a level no random (non-matching) pair reached: what splink assumes."""


def save_model(model: Mapping[str, Any], path: Path) -> None:
    """Write the model JSON atomically (parameters only: no personal data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(model, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def load_model(path: Path) -> dict[str, Any] | None:
    """The saved model, or None if there is none or it was made by another model version."""
    if not path.is_file():
        return None
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(model, dict) or model.get("cdp", {}).get("version") != MODEL_VERSION:
        return None
    return model


def level_weights(model: Mapping[str, Any]) -> dict[str, list[float]]:
    """Per comparison, the match weight of each level (0 for null levels and unknown parameters)."""
    out: dict[str, list[float]] = {}
    trained = {c["output_column_name"]: c for c in model["comparisons"]}
    for comparison in COMPARISONS:
        weights: list[float] = []
        for index, level in enumerate(comparison.levels):
            params = trained[comparison.name]["comparison_levels"][index]
            if level.is_null:
                weights.append(0.0)
            else:
                m, u = float(params["m_probability"]), float(params["u_probability"])
                weights.append(math.log2(max(m, 1e-300) / max(u, 1e-300)))
        out[comparison.name] = weights
    return out


def predict_pairs(rows: Sequence[Mapping[str, Any]], model: Mapping[str, Any], *, threshold: float) -> list[PairScore]:
    """Score the blocked candidate pairs of ``rows``; keep those at or above ``threshold``.

    Raises :class:`~cdp._exceptions.ResourceExhausted` when DuckDB runs out of memory.
    """
    if len(rows) < 2:
        return []
    with refusing_to_spill("scoring candidate pairs"):
        return _predict_pairs(rows, model, threshold=threshold)


def _predict_pairs(rows: Sequence[Mapping[str, Any]], model: Mapping[str, Any], *, threshold: float) -> list[PairScore]:
    # Content-ordered ids, as in training, so a pair's orientation (and so its score) does not
    # depend on random record ids; mapped back to the real ids below.
    ordered = sorted(
        rows, key=lambda r: (tuple(str(r.get(k)) for k in sorted(r) if k != "unique_id"), str(r["unique_id"]))
    )
    real = {f"t{i:09d}": str(r["unique_id"]) for i, r in enumerate(ordered)}
    linker = _linker([{**r, "unique_id": f"t{i:09d}"} for i, r in enumerate(ordered)], model)
    predictions = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    gammas = ", ".join(f"gamma_{c.name}" for c in COMPARISONS)
    relation = linker._db_api.duckdb_con.sql(
        f"SELECT unique_id_l, unique_id_r, match_probability, match_weight, {gammas} FROM {predictions.physical_name}"
    )
    weights = level_weights(model)
    levels = {c.name: [level.label for level in c.levels] for c in COMPARISONS}
    null_index = {c.name: next((i for i, lv in enumerate(c.levels) if lv.is_null), -1) for c in COMPARISONS}
    out: list[PairScore] = []
    for row in relation.fetchall():
        fields: dict[str, tuple[str, float]] = {}
        for offset, comparison in enumerate(COMPARISONS):
            gamma = int(row[4 + offset])
            # splink numbers levels from the else level (0) upwards; null is -1
            index = null_index[comparison.name] if gamma == -1 else len(comparison.levels) - 1 - gamma
            fields[comparison.name] = (levels[comparison.name][index], weights[comparison.name][index])
        out.append(PairScore(real[str(row[0])], real[str(row[1])], float(row[2]), float(row[3]), fields))
    predictions.drop_table_from_database_and_remove_from_cache()
    return out
