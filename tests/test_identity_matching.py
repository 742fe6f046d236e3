"""Matching keys and guarded clustering on hand-made records (no store, no splink)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdp.identity._clustering import Clustering, ManualRules, cluster_records, names_compatible
from cdp.identity._features import DomainCorrector, assign_name_frequencies, feature_row, feature_rows
from cdp.identity.deterministic import NameKey
from cdp.identity.evaluate import evaluate_assignment, load_labels, scoped_assignment
from cdp.identity.probabilistic import PairScore


def record(record_id: str, **fields: Any) -> dict[str, Any]:
    digests = fields.pop("digests", {})
    return {"record_id": record_id, "kind": "identity", "source": "pos", "source_record_id": record_id,
            "digests": digests, **fields}  # fmt: skip


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"given_name": "伟", "family_name": "王"}, {"given_name": "Wei", "family_name": "Wang"}),
        ({"given_name": "Wei", "family_name": "Wang"}, {"given_name": "Wang", "family_name": "Wei"}),
        ({"given_name": "Bob", "family_name": "Smith"}, {"given_name": "Robert", "family_name": "SMITH"}),
        ({"given_name": "José", "family_name": "García"}, {"given_name": "Jose", "family_name": "Garcia"}),
        ({"given_name": "Wei", "family_name": "Wong", "country": "US"}, {"given_name": "Wei", "family_name": "Wang"}),
    ],
)
def test_same_person_written_differently_gets_one_name_key(a: dict[str, str], b: dict[str, str]) -> None:
    assert feature_row(record("a", **a))["name_key"] == feature_row(record("b", **b))["name_key"]


def test_different_people_keep_different_name_keys() -> None:
    a = feature_row(record("a", given_name="John", family_name="Smith"))
    b = feature_row(record("b", given_name="Jane", family_name="Smith"))
    assert a["name_key"] != b["name_key"] and a["family"] == b["family"]


def test_identifier_keys_are_normalised() -> None:
    row = feature_row(
        record(
            "a", email="J.Smith+shop@GoogleMail.com", phone="(415) 555-0100", country="US", date_of_birth="1970-01-01"
        )
    )
    assert row["email_key"] == "jsmith@gmail.com"
    assert row["phone"] == "+14155550100"
    assert row["dob"] is None  # a placeholder date is no evidence


def test_mistyped_domain_is_corrected_only_towards_a_popular_one() -> None:
    domains = DomainCorrector({"gmail.com": 500, "hotmail.com": 300})
    assert feature_row(record("a", email="ann@gmial.com"), domains)["email_key"] == "ann@gmail.com"
    assert feature_row(record("b", email="ann@example.org"), domains)["email_key"] == "ann@example.org"


def test_name_frequency_counts_people_not_records() -> None:
    rows = feature_rows([record(f"r{i}", given_name="Wei", family_name="Wang") for i in range(4)])
    assign_name_frequencies(rows, {"r0": "p", "r1": "p", "r2": "p", "r3": "q"})
    assert {r["name_freq"] for r in rows} == {"rare"}
    assign_name_frequencies(rows, {f"r{i}": f"p{i}" for i in range(4)})
    assert {r["name_freq"] for r in rows} == {"common"}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (NameKey("christopher", "smith", frozenset()), NameKey("chris", "smith", frozenset()), True),
        (NameKey("j", "smith", frozenset()), NameKey("john", "smith", frozenset()), True),
        (NameKey("lea", "michel", frozenset()), NameKey("lez", "michel", frozenset()), True),
        (NameKey("john", "smith", frozenset()), NameKey("mary", "smith", frozenset()), False),
        (NameKey("christina", "gauthier", frozenset()), NameKey("christopher", "gauthier", frozenset()), False),
        # given and family swapped by a form, with a typo in one of them
        (NameKey("amelia", "grahamjones", frozenset()), NameKey("grahamjones", "amelua", frozenset()), True),
        (NameKey("amelia", "grahamjones", frozenset()), NameKey("grahamjones", "oliver", frozenset()), False),
    ],
)
def test_name_guard(a: NameKey, b: NameKey, expected: bool) -> None:
    assert names_compatible(a, b) is expected


def _household() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    records = [
        record("john1", given_name="John", family_name="Lee", digests={"phone": "home", "email": "fam"}),
        record("mary1", given_name="Mary", family_name="Lee", digests={"phone": "home", "email": "fam"}),
        record("john2", given_name="Johnny", family_name="Lee", digests={"loyalty_id": "card"}),
        record("john3", digests={"loyalty_id": "card"}),
    ]
    features = {r["unique_id"]: r for r in feature_rows(records)}
    return records, features


def test_shared_household_identifiers_do_not_glue_relatives() -> None:
    records, features = _household()
    result = cluster_records(records, features, [])
    assert result.clusters["john1"] != result.clusters["mary1"]
    assert result.clusters["john2"] == result.clusters["john3"]
    assert result.refused >= 1


def test_probabilistic_pairs_join_when_names_agree_and_are_refused_otherwise() -> None:
    records, features = _household()
    pairs = [PairScore("john1", "john2", 0.99, 9.0), PairScore("mary1", "john2", 0.98, 8.0)]
    result = cluster_records(records, features, pairs)
    assert result.clusters["john1"] == result.clusters["john2"] == result.clusters["john3"]
    assert result.clusters["mary1"] != result.clusters["john1"]
    assert [p.left for p in result.accepted] == ["john1"] and [p.left for p in result.refused_pairs] == ["mary1"]


def test_clustering_in_stages_gives_identifier_clusters_first_and_the_same_result() -> None:
    records, features = _household()
    pairs = [PairScore("john1", "john2", 0.99, 9.0), PairScore("mary1", "john2", 0.98, 8.0)]
    clustering = Clustering(records, features)
    first = clustering.labels()
    assert first["john2"] == first["john3"] and first["john1"] != first["john2"]  # the loyalty card only
    result = clustering.finish(pairs)
    assert result.clusters == cluster_records(records, features, pairs).clusters
    assert result.clusters["john1"] == result.clusters["john3"]
    with pytest.raises(RuntimeError):
        clustering.finish(pairs)


def test_manual_rules_override_automatic_joins() -> None:
    records, features = _household()
    pairs = [PairScore("john1", "john2", 0.99, 9.0)]
    rules = ManualRules(merges=(("mary1", "john3"),), splits=frozenset({"john1"}), nevers=(("john2", "john3"),))
    result = cluster_records(records, features, pairs, rules)
    assert result.clusters["mary1"] == result.clusters["john3"]  # merged by a person despite the guard
    assert result.clusters["john2"] != result.clusters["john3"]  # never, despite the shared loyalty card
    assert len({result.clusters[r] for r in ("john1", "john2", "mary1")}) == 3  # john1 stays split off


def test_evaluation_on_a_hand_made_label_set(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "source,record_id,entity_id\nweb,a,e1\nweb,b,e1\npos,c,e1\npos,d,e2\npos,e,e2\nsurvey,f,e3\n", encoding="utf-8"
    )
    truth = load_labels(labels)
    assert truth[("website", "a")] == "e1"
    predicted = {
        ("website", "a"): "p1",
        ("website", "b"): "p1",
        ("pos", "c"): "p2",  # e1 split in two
        ("pos", "d"): "p3",
        ("pos", "e"): "p3",
        ("survey", "f"): "p3",  # e3 glued to e2
        ("survey", "x"): "p9",  # unlabelled: not counted
    }
    m = evaluate_assignment(predicted, truth)
    # predicted pairs: ab, de, df, ef = 4; true pairs: ab, ac, bc, de = 4; correct: ab, de = 2
    assert (m.predicted_pairs, m.true_pairs, m.true_positive_pairs) == (4, 4, 2)
    assert m.precision == pytest.approx(0.5) and m.recall == pytest.approx(0.5) and m.f1 == pytest.approx(0.5)
    # B-cubed precision: a,b 1; c 1; d,e 2/3; f 1/3 -> (1+1+1+2/3+2/3+1/3)/6
    assert m.bcubed_precision == pytest.approx((3 + 5 / 3) / 6)
    # B-cubed recall: a,b 2/3; c 1/3; d,e 1; f 1 -> (2/3+2/3+1/3+3)/6
    assert m.bcubed_recall == pytest.approx((5 / 3 + 3) / 6)
    assert (m.records, m.unlabelled, m.largest_cluster, m.clusters, m.entities) == (6, 1, 3, 3, 3)
    assert m.exact_clusters == pytest.approx(0.0)


def test_scope_counts_identity_records_and_linked_events() -> None:
    records: list[dict[str, str | None]] = [
        {"source": "website", "source_record_id": "i", "kind": "identity", "profile_id": None},
        {"source": "website", "source_record_id": "e1", "kind": "event", "profile_id": "p1"},
        {"source": "website", "source_record_id": "e2", "kind": "event", "profile_id": None},
    ]
    assert scoped_assignment(records, "identity") == {("website", "i"): None}
    assert set(scoped_assignment(records, "resolved")) == {("website", "i"), ("website", "e1")}


def _juniors() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    records = [
        record("sr", given_name="John", family_name="Lee", date_of_birth="1950-03-02", user_id="A1"),
        record("jr", given_name="John", family_name="Lee", date_of_birth="1980-07-09", user_id="A1"),
    ]
    return records, {r["unique_id"]: r for r in feature_rows(records)}


def _pair(account: str, weight: float, birth_weight: float) -> PairScore:
    fields = {"account_id": (account, 13.0), "date_of_birth": ("else", birth_weight), "name": ("exact", 12.0)}
    return PairScore("sr", "jr", 0.99, weight, fields)


@pytest.mark.parametrize(
    ("pair", "joined"),
    [
        (_pair("exact", 20.0, -4.5), True),  # the account id and the name outweigh the birth date
        (_pair("else", 20.0, -4.5), False),  # no agreeing account id: the guard is absolute
        (_pair("exact", 4.0, 3.0), False),  # without the birth date's weight the evidence is too weak
    ],
)
def test_birth_date_guard_gives_way_only_to_strong_account_evidence(pair: PairScore, joined: bool) -> None:
    records, features = _juniors()
    result = cluster_records(records, features, [pair], threshold=0.9)
    assert (result.clusters["sr"] == result.clusters["jr"]) is joined


def test_account_id_is_a_feature_and_one_keystroke_is_a_level() -> None:
    from cdp.identity._comparisons import COMPARISONS, level_of

    a = feature_row(record("a", given_name="Ann", user_id=" 5714719 "))
    b = feature_row(record("b", given_name="Ann", user_id="5714791"))
    account = next(c for c in COMPARISONS if c.name == "account_id")
    assert a["account_id"] == "5714719"
    assert account.levels[level_of(account, a, b)].label == "one keystroke apart"


def _namesakes(born_a: str, born_b: str, given_b: str = "John") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    records = [
        record("a", given_name="John", family_name="Lee", date_of_birth=born_a),
        record("b", given_name=given_b, family_name="Lee", date_of_birth=born_b),
    ]
    return records, {r["unique_id"]: r for r in feature_rows(records)}


@pytest.mark.parametrize(
    ("born_b", "given_b", "joined"),
    [
        ("1957-02-11", "John", True),  # same name, same generation: the birth date was mistyped or replaced
        ("1957-02-11", "Jhon", True),  # ... also with a typo in the name
        ("1982-02-11", "John", False),  # a generation apart: a Jr., the guard holds
        ("1957-02-11", "Mary", False),  # another name: a relative (the name guard)
    ],
)
def test_birth_date_guard_yields_within_a_generation_for_the_same_name(born_b: str, given_b: str, joined: bool) -> None:
    records, features = _namesakes("1950-09-03", born_b, given_b)
    pair = PairScore("a", "b", 0.999, 12.0, {"name": ("exact", 12.0), "date_of_birth": ("else", -4.5)})
    result = cluster_records(records, features, [pair], threshold=0.9)
    assert (result.clusters["a"] == result.clusters["b"]) is joined


def test_shared_birth_date_lets_a_family_name_typo_count_as_agreeing() -> None:
    records = [
        record("a", given_name="Naomi", family_name="Reid", date_of_birth="1998-05-21"),
        record("b", given_name="Max", family_name="Rei", date_of_birth="1998-05-21"),
        record("c", given_name="Nicholas", family_name="Hope", date_of_birth="1998-05-21"),
    ]
    features = {r["unique_id"]: r for r in feature_rows(records)}
    pairs = [PairScore("a", "b", 0.999, 12.0), PairScore("a", "c", 0.999, 11.0)]
    result = cluster_records(records, features, pairs, threshold=0.9)
    assert result.clusters["a"] == result.clusters["b"] != result.clusters["c"]
