"""Comparison levels on hand-made pairs: what each level means, splink's SQL agreeing with Python,
and the single-record matcher scoring and guarding as the batch does.

The batch run puts a pair in a level with splink's SQL; a single new record is
scored in process with the Python predicates. The pairs below are chosen to
reach the name, street and address levels one by one, and every pair must land
in the same level both ways.
"""

from __future__ import annotations

from typing import Any

import pytest

from cdp.identity._comparisons import COMPARISONS, level_of, score_pair, splink_comparisons
from cdp.identity._features import feature_row, feature_rows
from cdp.identity.probabilistic import predict_pairs

SAME = {"date_of_birth": "1961-04-12", "city": "Leeds", "country": "GB"}
"""Shared by every record, so the blocking rule on birth date and city puts every pair before splink."""

RECORDS: list[dict[str, Any]] = [
    {"given_name": "Jack", "family_name": "Steinert", "street": "12 Maple St.", "postcode": "LS1 4AP"},
    {"given_name": "Steinert", "family_name": "Jack", "street": "12 Maple Street", "postcode": "LS1 4AP"},
    {"family_name": "Herbert", "street": "12 Mapel Street", "postcode": "LS2 7HE"},
    {"given_name": "Olivia", "family_name": "Herbret", "street": "40 Oak Road"},
    {"given_name": "Kaitlin", "street": "12 maple street", "postcode": "LS1 4AQ"},
    {"given_name": "Katilin", "street": "9 Elm Lane", "postcode": "LS1 4AP"},
    {"given_name": "Maria", "family_name": "Herbert", "postcode": "LS2 7HE"},
]


def _rows() -> list[dict[str, Any]]:
    records = [{"record_id": f"r{i}", **SAME, **fields} for i, fields in enumerate(RECORDS)]
    return feature_rows(records)


def _model() -> dict[str, Any]:
    """Distinct m and u on every level, so any level mix-up changes the weight."""
    comparisons = splink_comparisons()
    for c, comparison in enumerate(comparisons):
        for i, level in enumerate(comparison["comparison_levels"]):
            if not level.get("is_null_level"):
                level["m_probability"] = 0.5 / (i + 1) + 0.001 * c
                level["u_probability"] = 0.01 * (i + 1) + 0.0001 * c
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "comparisons": comparisons,
        "probability_two_random_records_match": 0.01,
    }


def _level(name: str, a: dict[str, Any], b: dict[str, Any]) -> str:
    comparison = next(c for c in COMPARISONS if c.name == name)
    return comparison.levels[level_of(comparison, a, b)].label


def test_street_lines_are_compared_with_abbreviations_written_out() -> None:
    rows = _rows()
    assert rows[0]["street"] == rows[1]["street"] == "12 maple street"
    assert _level("location", rows[0], rows[1]) == "same street, same postcode or city"
    assert _level("location", rows[0], rows[2]) == "street within two edits, same postcode or city"
    # another street in the same postcode and town
    assert _level("location", rows[1], rows[5]) == "same postcode and city, another street"


def test_swapped_given_and_family_name_keep_one_name_key() -> None:
    rows = _rows()
    assert rows[0]["name_key"] == rows[1]["name_key"]  # "Jack" is read as "john" in either field
    assert _level("name", rows[0], rows[1]).startswith("exact")


def test_a_missing_name_part_is_not_a_disagreement() -> None:
    rows = _rows()
    assert _level("name", rows[2], rows[6]) == "one name missing, the other within a typo"  # family only
    assert _level("name", rows[4], rows[5]) == "one name missing, the other within a typo"  # given only
    assert _level("name", rows[3], rows[6]) == "family name within a typo"  # both have a given name
    single = feature_row({"record_id": "x", "given_name": "M", "family_name": "Herbret"})
    assert _level("name", single, rows[6]) == "family name within a typo"  # an initial is a given name


def test_splink_and_the_in_process_scorer_put_every_pair_in_the_same_level() -> None:
    rows = _rows()
    model = _model()
    by_id = {r["unique_id"]: r for r in rows}
    pairs = predict_pairs(rows, model, threshold=0.0)
    assert len(pairs) == len(rows) * (len(rows) - 1) // 2
    seen: set[tuple[str, str]] = set()
    for pair in pairs:
        probability, weight, fields = score_pair(model, by_id[pair.left], by_id[pair.right])
        assert [f.level for f in fields] == [level for level, _ in pair.fields.values()]
        assert weight == pytest.approx(pair.match_weight, abs=1e-6)
        assert probability == pytest.approx(pair.probability, abs=1e-9)
        seen |= {(f.field, f.level) for f in fields}
    for expected in [
        ("name", "one name missing, the other within a typo"),
        ("name", "family name within a typo"),
        ("location", "same street, same postcode or city"),
        ("location", "street within two edits, same postcode or city"),
    ]:
        assert expected in seen


def _name_model() -> dict[str, Any]:
    """An exact name is strong evidence, a different birth date weak evidence against; the rest neutral."""
    model = _model()
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            level["m_probability"] = level["u_probability"] = 0.5
            label = level["label_for_charts"]
            if comparison["output_column_name"] == "name" and label.startswith("exact"):
                level["m_probability"], level["u_probability"] = 0.9, 1e-6
            if comparison["output_column_name"] == "date_of_birth" and label == "else":
                level["m_probability"], level["u_probability"] = 0.1, 0.9
    return model


@pytest.mark.parametrize(("born", "matched"), [("1957-02-11", True), ("1982-02-11", False)])
def test_incremental_matching_applies_the_batch_guards(born: str, matched: bool) -> None:
    from cdp.identity.incremental import ProfileIndex

    index = ProfileIndex(_name_model(), threshold=0.9)
    person = {"given_name": "John", "family_name": "Lee", "date_of_birth": "1950-09-03", "kind": "identity"}
    index.add_records([{**person, "record_id": "r1", "profile_id": "p1"}])
    result = index.match({**person, "date_of_birth": born, "record_id": "new"})
    assert result.best is not None and result.best.probability > 0.99  # the score alone would join both
    assert (result.profile_id == "p1") is matched  # within a generation a typo; a generation apart a Jr.
    assert result.refused == ([] if matched else ["p1"])


MORE: list[dict[str, Any]] = [
    {"given_name": "Anna", "family_name": "Berg", "date_of_birth": "1980-03-07", "street": "7 Kings Road"},
    {"given_name": "Anna", "family_name": "Berg", "date_of_birth": "1980-07-04", "street": "118 Kings Road"},
    {"given_name": "Anna", "family_name": "Berg", "street": "7 Kings Raod", "postcode": "LS1 4AQ", "city": "York"},
    {"given_name": "Berg", "family_name": "Lund", "date_of_birth": "1980-03-07", "street": "7 Kings Road"},
]
"""Anna Berg, then with a swapped and mistyped birth date at another house of her street, with a
mistyped street and postcode in another town, and a record whose form put her family name first."""


def test_levels_for_moved_house_numbers_mistyped_postcodes_swapped_dates_and_fields() -> None:
    records = [
        {"record_id": f"m{i}", "country": "GB", "postcode": "LS1 4AP", "city": "Leeds", **fields}
        for i, fields in enumerate(MORE)
    ]
    rows = feature_rows(records)
    assert rows[1]["street_name"] == "kings road"
    assert _level("date_of_birth", rows[0], rows[1]) == "one keystroke apart (day and month swapped or not)"
    assert _level("location", rows[0], rows[1]) == (
        "street name within a keystroke (house number aside), same postcode or city"
    )
    assert _level("location", rows[0], rows[2]) == "street within two edits, postcode one keystroke apart"
    assert _level("name", rows[0], rows[3]) == "a name found in the other field"
    model = _model()
    by_id = {r["unique_id"]: r for r in rows}
    pairs = predict_pairs(rows, model, threshold=0.0)
    assert {(p.left, p.right) for p in pairs} >= {("m0", "m1"), ("m0", "m2"), ("m0", "m3")}
    for pair in pairs:
        _probability, weight, fields = score_pair(model, by_id[pair.left], by_id[pair.right])
        assert [f.level for f in fields] == [level for level, _ in pair.fields.values()]
        assert weight == pytest.approx(pair.match_weight, abs=1e-6)


def test_a_name_in_the_other_field_with_a_shared_birth_date_passes_the_name_guard() -> None:
    from cdp.identity._clustering import guards_allow
    from cdp.identity.probabilistic import PairScore

    anna, swapped = (feature_row({"record_id": f"g{i}", **MORE[i]}) for i in (0, 3))
    pair = PairScore("g0", "g3", 0.99, 7.0, {})
    assert guards_allow([anna], [swapped], pair, 0.9)
    assert not guards_allow([anna], [{**swapped, "dob": "1950-01-01", "dob_swapped": None}], pair, 0.9)


def test_sampled_u_leaves_out_the_duplicates_among_random_pairs() -> None:
    from cdp.identity.probabilistic import _complete_parameters

    model = _model()
    model["probability_two_random_records_match"] = 1e-4
    account = next(c for c in model["comparisons"] if c["output_column_name"] == "account_id")
    exact, near = account["comparison_levels"][1], account["comparison_levels"][2]
    exact["m_probability"], exact["u_probability"] = 0.9, 9.3e-5  # 90 of every 93 sharing pairs are matches
    near["m_probability"], near["u_probability"] = 0.05, 4e-6  # all of them: floored
    _complete_parameters(model)
    assert exact["u_probability"] == pytest.approx((9.3e-5 - 0.9e-4) / (1 - 1e-4))
    assert near["u_probability"] == 1e-6
