"""The matching model's comparisons, written once for SQL (splink) and once for Python.

Each compared field has ordered levels (first true level wins, as in SQL
``CASE``). The batch run hands the SQL to splink; scoring a single new record
in process uses the Python predicates with the m/u parameters of the saved
model. Both must put every pair in the same level, so levels only use
equality, Levenshtein distance and columns precomputed by
:mod:`cdp.identity._features` (no floating-point similarity whose SQL and
Python implementations could disagree); a test scores pairs both ways and
compares.

Fellegi–Sunter: match weight = log2(λ/(1-λ)) + Σ log2(m/u) over non-null
levels; probability = 2^w / (1 + 2^w).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jellyfish

__all__ = [
    "COMPARISONS",
    "Comparison",
    "FieldScore",
    "Level",
    "level_of",
    "probability_from_weight",
    "score_pair",
    "splink_comparisons",
]

Row = Mapping[str, Any]
Predicate = Callable[[Row, Row], bool]


@dataclass(frozen=True)
class Level:
    label: str
    sql: str
    test: Predicate
    is_null: bool = False


@dataclass(frozen=True)
class Comparison:
    name: str
    description: str
    levels: tuple[Level, ...]


def _eq(column: str) -> Predicate:
    return lambda a, b: a.get(column) is not None and a.get(column) == b.get(column)


def _lev(column: str, most: int) -> Predicate:
    def test(a: Row, b: Row) -> bool:
        x, y = a.get(column), b.get(column)
        return x is not None and y is not None and jellyfish.levenshtein_distance(x, y) <= most

    return test


def _one_keystroke(column: str) -> Predicate:
    """One insertion, deletion, substitution or swap of neighbours (Damerau–Levenshtein ≤ 1)."""

    def test(a: Row, b: Row) -> bool:
        x, y = a.get(column), b.get(column)
        return x is not None and y is not None and jellyfish.damerau_levenshtein_distance(x, y) <= 1

    return test


def _null(*columns: str) -> Predicate:
    """Null level: one side has none of ``columns``."""
    return lambda a, b: all(a.get(c) is None for c in columns) or all(b.get(c) is None for c in columns)


def _sql_null(*columns: str) -> str:
    left = " AND ".join(f"{c}_l IS NULL" for c in columns)
    right = " AND ".join(f"{c}_r IS NULL" for c in columns)
    return f"({left}) OR ({right})"


def _else() -> Level:
    return Level("else", "ELSE", lambda a, b: True)


def _name_fuzzy(a: Row, b: Row) -> bool:
    return (_eq("family")(a, b) and _lev("given", 2)(a, b)) or (_eq("given")(a, b) and _one_keystroke("family")(a, b))


def _typo(x: Any, y: Any) -> bool:
    return x is not None and y is not None and jellyfish.levenshtein_distance(x, y) <= 2


def _both_names_typo(a: Row, b: Row) -> bool:
    """Given and family each within two edits, in the same or in swapped order."""
    same = _typo(a.get("given"), b.get("given")) and _typo(a.get("family"), b.get("family"))
    return same or (_typo(a.get("given"), b.get("family")) and _typo(a.get("family"), b.get("given")))


def _exact_name(bucket: str | None) -> Predicate:
    def test(a: Row, b: Row) -> bool:
        return _eq("name_key")(a, b) and (bucket is None or a.get("name_freq") == bucket)

    return test


def _one_name_missing(a: Row, b: Row) -> bool:
    """One side lacks a given (or family) name; the part both have is within a typo."""
    no_given = a.get("given_initial") is None or b.get("given_initial") is None
    no_family = a.get("family") is None or b.get("family") is None
    return (no_given and _one_keystroke("family")(a, b)) or (no_family and _lev("given", 2)(a, b))


def _dob_keystroke(a: Row, b: Row) -> bool:
    """Birth dates one keystroke apart, as written or with one's day and month swapped (as the guards read them)."""
    near = _one_keystroke("dob")
    swapped_a = {**a, "dob": a.get("dob_swapped")}
    swapped_b = {**b, "dob": b.get("dob_swapped")}
    return near(a, b) or near(swapped_a, b) or near(a, swapped_b)


def _name_crosswise(a: Row, b: Row) -> bool:
    """One record's given name is the other's family name (a form with the fields swapped)."""
    given_a, family_a, given_b, family_b = (r.get(k) for r in (a, b) for k in ("given", "family"))
    return (given_a is not None and given_a == family_b) or (family_a is not None and family_a == given_b)


def _location_null(a: Row, b: Row) -> bool:
    both_postcode = a.get("postcode") is not None and b.get("postcode") is not None
    both_city = a.get("city") is not None and b.get("city") is not None
    return not (both_postcode or both_city)


def _same_area(a: Row, b: Row) -> bool:
    return _eq("postcode")(a, b) or _eq("city")(a, b)


_SAME_AREA = "postcode_l = postcode_r OR city_l = city_r"
_BOTH_LOCATED = "(postcode_l IS NOT NULL AND postcode_r IS NOT NULL) OR (city_l IS NOT NULL AND city_r IS NOT NULL)"

COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        "name",
        "name tokens (order, script and nickname independent), family and given name",
        (
            Level(
                "null", _sql_null("family", "given", "given_initial"), _null("family", "given", "given_initial"), True
            ),
            Level("exact, rare name", "name_key_l = name_key_r AND name_freq_l = 'rare'", _exact_name("rare")),
            Level("exact, common name", "name_key_l = name_key_r AND name_freq_l = 'common'", _exact_name("common")),
            Level("exact, very common name", "name_key_l = name_key_r", _exact_name(None)),
            Level(
                "one name exact, the other within a typo",
                "(family_l = family_r AND levenshtein(given_l, given_r) <= 2) "
                "OR (given_l = given_r AND damerau_levenshtein(family_l, family_r) <= 1)",
                _name_fuzzy,
            ),
            Level(
                "both names within a typo, in either order",
                "(levenshtein(given_l, given_r) <= 2 AND levenshtein(family_l, family_r) <= 2) "
                "OR (levenshtein(given_l, family_r) <= 2 AND levenshtein(family_l, given_r) <= 2)",
                _both_names_typo,
            ),
            Level(
                "one name missing, the other within a typo",
                "((given_initial_l IS NULL OR given_initial_r IS NULL) "
                "AND damerau_levenshtein(family_l, family_r) <= 1) "
                "OR ((family_l IS NULL OR family_r IS NULL) AND levenshtein(given_l, given_r) <= 2)",
                _one_name_missing,
            ),
            Level(
                "family name and initial",
                "family_l = family_r AND given_initial_l = given_initial_r",
                lambda a, b: _eq("family")(a, b) and _eq("given_initial")(a, b),
            ),
            Level("family name only", "family_l = family_r", _eq("family")),
            Level(
                "family name within a typo",
                "damerau_levenshtein(family_l, family_r) <= 1",
                _one_keystroke("family"),
            ),
            Level("given name only", "given_l = given_r", _eq("given")),
            Level(
                "a name found in the other field",
                "given_l = family_r OR family_l = given_r",
                _name_crosswise,
            ),
            _else(),
        ),
    ),
    Comparison(
        "email",
        "e-mail match key (plus-tags and Gmail dots removed)",
        (
            Level("null", _sql_null("email_key"), _null("email_key"), True),
            Level("exact", "email_key_l = email_key_r", _eq("email_key")),
            _else(),
        ),
    ),
    Comparison(
        "phone",
        "phone number in E.164",
        (
            Level("null", _sql_null("phone"), _null("phone"), True),
            Level("exact", "phone_l = phone_r", _eq("phone")),
            Level("one digit differs", "levenshtein(phone_l, phone_r) <= 1", _lev("phone", 1)),
            _else(),
        ),
    ),
    Comparison(
        "date_of_birth",
        "date of birth (placeholder dates ignored)",
        (
            Level("null", _sql_null("dob"), _null("dob"), True),
            Level("exact", "dob_l = dob_r", _eq("dob")),
            Level(
                "day and month swapped",
                "dob_swapped_l = dob_r",
                lambda a, b: a.get("dob_swapped") is not None and a.get("dob_swapped") == b.get("dob"),
            ),
            Level(
                "one keystroke apart (day and month swapped or not)",
                "damerau_levenshtein(dob_l, dob_r) <= 1 OR damerau_levenshtein(dob_swapped_l, dob_r) <= 1 "
                "OR damerau_levenshtein(dob_l, dob_swapped_r) <= 1",
                _dob_keystroke,
            ),
            _else(),
        ),
    ),
    Comparison(
        "location",
        "address: street line with postcode or city, else postcode, else city (one comparison, since a "
        "shared street implies a shared postcode)",
        (
            Level(
                "null",
                f"NOT ({_BOTH_LOCATED})",
                _location_null,
                True,
            ),
            Level(
                "same street, same postcode or city",
                f"street_l = street_r AND ({_SAME_AREA})",
                lambda a, b: _eq("street")(a, b) and _same_area(a, b),
            ),
            Level(
                "street within two edits, same postcode or city",
                f"levenshtein(street_l, street_r) <= 2 AND ({_SAME_AREA})",
                lambda a, b: _lev("street", 2)(a, b) and _same_area(a, b),
            ),
            Level(
                "street name within a keystroke (house number aside), same postcode or city",
                f"damerau_levenshtein(street_name_l, street_name_r) <= 1 AND ({_SAME_AREA})",
                lambda a, b: _one_keystroke("street_name")(a, b) and _same_area(a, b),
            ),
            Level(
                "street within two edits, postcode one keystroke apart",
                "levenshtein(street_l, street_r) <= 2 AND damerau_levenshtein(postcode_l, postcode_r) <= 1",
                lambda a, b: _lev("street", 2)(a, b) and _one_keystroke("postcode")(a, b),
            ),
            Level(
                "same postcode and city, another street",
                "postcode_l = postcode_r AND city_l = city_r",
                lambda a, b: _eq("postcode")(a, b) and _eq("city")(a, b),
            ),
            Level("same postcode", "postcode_l = postcode_r", _eq("postcode")),
            Level("same city", "city_l = city_r", _eq("city")),
            Level(
                "postcode one keystroke apart",
                "damerau_levenshtein(postcode_l, postcode_r) <= 1",
                _one_keystroke("postcode"),
            ),
            _else(),
        ),
    ),
    Comparison(
        "account_id",
        "account or customer number (user_id)",
        (
            Level("null", _sql_null("account_id"), _null("account_id"), True),
            Level("exact", "account_id_l = account_id_r", _eq("account_id")),
            Level(
                "one keystroke apart",
                "damerau_levenshtein(account_id_l, account_id_r) <= 1",
                _one_keystroke("account_id"),
            ),
            _else(),
        ),
    ),
)


def splink_comparisons() -> list[dict[str, Any]]:
    """The comparisons as splink settings dicts (no parameters: training fills them in)."""
    out: list[dict[str, Any]] = []
    for comparison in COMPARISONS:
        levels: list[dict[str, Any]] = []
        for level in comparison.levels:
            item: dict[str, Any] = {"sql_condition": level.sql, "label_for_charts": level.label}
            if level.is_null:
                item["is_null_level"] = True
            levels.append(item)
        out.append(
            {
                "output_column_name": comparison.name,
                "comparison_description": comparison.description,
                "comparison_levels": levels,
            }
        )
    return out


def level_of(comparison: Comparison, left: Row, right: Row) -> int:
    """Index of the first level of ``comparison`` that holds for the pair."""
    for index, level in enumerate(comparison.levels):
        if level.test(left, right):
            return index
    return len(comparison.levels) - 1


@dataclass(frozen=True)
class FieldScore:
    field: str
    level: str
    match_weight: float


def probability_from_weight(weight: float) -> float:
    if weight > 1000:
        return 1.0
    odds = math.pow(2.0, weight)
    return odds / (1.0 + odds)


def score_pair(
    model: Mapping[str, Any], left: Row, right: Row, comparisons: Sequence[Comparison] = COMPARISONS
) -> tuple[float, float, list[FieldScore]]:
    """(match probability, match weight, per-field scores) of one pair from a saved splink model."""
    prior = float(model["probability_two_random_records_match"])
    weight = math.log2(prior / (1.0 - prior))
    fields: list[FieldScore] = []
    trained = {c["output_column_name"]: c for c in model["comparisons"]}
    for comparison in comparisons:
        index = level_of(comparison, left, right)
        level = comparison.levels[index]
        if level.is_null:
            fields.append(FieldScore(comparison.name, level.label, 0.0))
            continue
        params = trained[comparison.name]["comparison_levels"][index]
        m, u = float(params["m_probability"]), float(params["u_probability"])
        level_weight = math.log2(max(m, 1e-300) / max(u, 1e-300))
        weight += level_weight
        fields.append(FieldScore(comparison.name, level.label, level_weight))
    return probability_from_weight(weight), weight, fields
