"""``profile_frame`` over columns (``cdp/access/_profile_frame.py``) equals ``read_profiles``.

The column path must be the row path, value for value: survivorship under every rule
(rectifications first, ties in the database's order), the consent row filter, masking,
restricted people, shredded keys, and the audit record of the read.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import polars as pl
import pytest
from sqlalchemy import func, select, update
from test_segments_events_read import DSR, OFFICER

from cdp.access import AccessContext, CustomerStore
from cdp.access import _golden_cache as golden_module
from cdp.access import _profile_frame as frame_module
from cdp.access import _tables as t
from cdp.access.context import classifier_context

TODAY = date(2026, 10, 3)
FIELDS = ("country", "state", "city", "gender", "age_band", "sources", "record_count")
CONTEXTS = [
    classifier_context("profiling"),
    AccessContext("user:mia", "marketer", "personalisation"),  # consent filter with opt-in jurisdictions
    AccessContext("user:mia", "marketer", "marketing_sms"),
    AccessContext("user:ann", "analyst", "analytics"),
    AccessContext("user:olga", "compliance_officer", "compliance"),  # restricted people too
]


def _row_path(store: CustomerStore, ctx: AccessContext, fields: tuple[str, ...], today: date = TODAY) -> pl.DataFrame:
    rows = store.read_profiles(ctx, fields, today=today)
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def _assert_same(
    store: CustomerStore, ctx: AccessContext, fields: tuple[str, ...] = FIELDS, today: date = TODAY
) -> pl.DataFrame:
    assert frame_module.supports(list(fields), store.settings.survivorship, store.keyring)
    fast = store.profile_frame(ctx, fields, today=today)
    slow = _row_path(store, ctx, fields, today)
    if not slow.height:
        assert fast.height == 0
        return fast
    assert fast.columns == slow.columns
    slow = slow.with_columns(pl.col(c).cast(fast[c].dtype) for c in slow.columns)
    assert fast.sort("profile_id").equals(slow.sort("profile_id")), (ctx, fields)
    return fast


def _multi_record_profile(store: CustomerStore) -> str:
    with store.engine.begin() as conn:
        counts = conn.execute(
            select(t.record_links.c.profile_id)
            .where(t.record_links.c.unlinked_at.is_(None))
            .group_by(t.record_links.c.profile_id)
            .having(func.count() > 1)
        ).scalars()
        return str(next(iter(counts)))


@pytest.mark.parametrize("ctx", CONTEXTS, ids=lambda c: f"{c.role}-{c.purpose}")
def test_column_path_equals_row_path(loaded: CustomerStore, ctx: AccessContext) -> None:
    frame = _assert_same(loaded, ctx)
    _assert_same(loaded, ctx, ("postcode", "country", "age_band"))  # masking: a generalised postcode
    assert frame.height >= 1 or ctx.role == "marketer"


@pytest.mark.parametrize("rule", ["most_recent", "most_trusted", "most_frequent", "longest"])
def test_every_survivorship_rule(loaded: CustomerStore, rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = dict.fromkeys(("city", "state", "country", "gender", "postcode", "date_of_birth"), rule)
    monkeypatch.setattr(loaded, "settings", dataclasses.replace(loaded.settings, survivorship=rules))
    person = _multi_record_profile(loaded)
    with loaded.engine.begin() as conn:  # values that disagree across one person's records
        ids = conn.execute(
            select(t.record_links.c.record_id).where(
                t.record_links.c.profile_id == person, t.record_links.c.unlinked_at.is_(None)
            )
        ).scalars()
        for n, record_id in enumerate(ids):
            conn.execute(
                update(t.records).where(t.records.c.id == record_id).values(city=["Lyon", "Paris", "Lyon"][n % 3])
            )
    for ctx in CONTEXTS:
        _assert_same(loaded, ctx, (*FIELDS, "postcode"))


def test_rectified_restricted_and_erased_people(loaded: CustomerStore) -> None:
    person = _multi_record_profile(loaded)
    loaded.rectify(DSR, person, {"city": "Rectified City", "date_of_birth": "1950-01-01"}, request_id="r-1")
    profiling = classifier_context("profiling")
    fast = _assert_same(loaded, profiling)
    row = fast.filter(pl.col("profile_id") == person).row(0, named=True)
    assert row["city"] == "Rectified City" and row["age_band"] == "65+"
    others = [p for p in fast["profile_id"].to_list() if p != person]
    loaded.set_profile_status(OFFICER, others[0], "restricted")
    assert others[0] not in _assert_same(loaded, profiling)["profile_id"].to_list()
    assert others[0] in _assert_same(loaded, OFFICER)["profile_id"].to_list()
    loaded.erase_subject(DSR, others[1])
    for ctx in CONTEXTS:
        assert others[1] not in _assert_same(loaded, ctx)["profile_id"].to_list()


def test_shredded_key_reads_as_no_birth_date(loaded: CustomerStore) -> None:
    profiling = classifier_context("profiling")
    before = _assert_same(loaded, profiling)
    person = before.filter(pl.col("age_band").is_not_null())["profile_id"][0]
    with loaded.engine.begin() as conn:
        keys = conn.execute(
            select(t.records.c.key_id)
            .join(t.record_links, t.record_links.c.record_id == t.records.c.id)
            .where(t.record_links.c.profile_id == person)
        ).scalars()
        loaded.shred_keys(conn, list(keys))
    after = _assert_same(loaded, profiling)
    assert after.filter(pl.col("profile_id") == person)["age_band"].to_list() == [None]


def test_read_is_decided_and_audited(loaded: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from cdp.access import audit

    monkeypatch.setattr(audit, "MAX_SUBJECTS_LISTED", 2)  # fewer listed than read: which two matters
    monkeypatch.setattr(frame_module, "MAX_SUBJECTS_LISTED", 2)
    frame = loaded.profile_frame(classifier_context("profiling"), FIELDS, today=TODAY)
    reads = [r for r in loaded.search_audit(OFFICER, action="read") if r["resource"] == "profiles"]
    assert reads[0]["decision"] == "allow" and reads[0]["subject_count"] == frame.height
    assert "excluded_by_consent" in reads[0]["detail"]
    # the same audit record as the row path's: same subjects listed, same count
    loaded.read_profiles(classifier_context("profiling"), FIELDS, today=TODAY)
    both = [r for r in loaded.search_audit(OFFICER, action="read") if r["resource"] == "profiles"][:2]
    assert both[0]["subjects"] == both[1]["subjects"] and len(both[0]["subjects"]) == 2
    assert both[0]["subject_count"] == both[1]["subject_count"]
    assert both[0]["detail"] == both[1]["detail"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_disagreeing_records(loaded: CustomerStore, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every record moved into a few profiles, with clashing values, sources and (tied) times."""
    import random
    from datetime import UTC, datetime, timedelta

    rng = random.Random(seed)
    with loaded.engine.begin() as conn:
        sources = list(conn.execute(select(t.sources.c.name)).scalars())
        people = list(conn.execute(select(t.profiles.c.id).where(t.profiles.c.status == "active")).scalars())[:4]
        links = list(conn.execute(select(t.record_links.c.id).where(t.record_links.c.unlinked_at.is_(None))).scalars())
        for link in links:
            conn.execute(
                update(t.record_links).where(t.record_links.c.id == link).values(profile_id=rng.choice(people))
            )
        for record_id in conn.execute(select(t.records.c.id)).scalars().all():
            conn.execute(
                update(t.records)
                .where(t.records.c.id == record_id)
                .values(
                    source=rng.choice(sources),
                    city=rng.choice(["Lyon", "Paris", "Nice", "Saint-Étienne", "", None]),
                    state=rng.choice(["A", "BB", None]),
                    gender=rng.choice(["female", "male", None]),
                    occurred_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=rng.choice([0, 1, 1, 2])),
                )
            )
    for rule in ("most_recent", "most_trusted", "most_frequent", "longest"):
        rules = dict.fromkeys(("city", "state", "country", "gender", "postcode", "date_of_birth"), rule)
        monkeypatch.setattr(loaded, "settings", dataclasses.replace(loaded.settings, survivorship=rules))
        for ctx in CONTEXTS:
            _assert_same(loaded, ctx, (*FIELDS, "postcode"))


def test_analytics_fields_take_the_column_path(loaded: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("column path taken")

    monkeypatch.setattr(frame_module, "golden_frame", refuse)
    with pytest.raises(RuntimeError, match="column path taken"):
        loaded.profile_frame(classifier_context("profiling"), FIELDS, today=TODAY)
    # fields it does not build (an identifier) go the row path
    assert loaded.profile_frame(OFFICER, ("email", "country"), today=TODAY).height >= 1


def _cache_rows(store: CustomerStore) -> list[tuple[str, str, int]]:
    with store.engine.begin() as conn:
        rows = conn.execute(select(t.analytic_cache.c.name, t.analytic_cache.c.key_id, t.analytic_cache.c.row_count))
        return [(r.name, r.key_id, r.row_count) for r in rows]


def _one_record_each(store: CustomerStore) -> None:
    """Every record its own profile (the fixtures' people all have several records)."""
    from datetime import UTC, datetime

    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    with store.engine.begin() as conn:
        links = list(conn.execute(select(t.record_links.c.id).where(t.record_links.c.unlinked_at.is_(None))).scalars())
        for n, link in enumerate(links):
            conn.execute(t.profiles.insert().values(id=f"p_one_{n:04d}", created_at=stamp, updated_at=stamp))
            conn.execute(update(t.record_links).where(t.record_links.c.id == link).values(profile_id=f"p_one_{n:04d}"))


def _decryptions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counts: list[int] = []
    original = frame_module._decrypt_birth_dates

    def counting(candidates: pl.DataFrame, *args: object) -> pl.Series:
        counts.append(candidates.height)
        return original(candidates, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(frame_module, "_decrypt_birth_dates", counting)
    return counts


def test_birth_year_cache_spares_decryption_and_follows_the_ciphertext(
    loaded: CustomerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiling = classifier_context("profiling")
    _one_record_each(loaded)
    # the birth-year cache alone: the golden cache (``test_golden_cache.py``) would spare every decryption
    monkeypatch.setattr(golden_module, "cacheable", lambda *args: False)
    counts = _decryptions(monkeypatch)
    first = _assert_same(loaded, profiling)
    [(name, _key_id, cached)] = _cache_rows(loaded)
    assert name == "birth_years" and cached >= 1
    with loaded.engine.begin() as conn:
        body = conn.execute(select(t.analytic_cache.c.body)).scalar_one()
    with pytest.raises(Exception):
        pl.read_ipc(bytes(body))
    second = _assert_same(loaded, profiling)
    assert second.equals(first)
    assert counts[1] < counts[0]  # only people whose band a birth year cannot settle, or with several records
    # a record's date of birth encrypted again (another value): the cached year no longer applies
    person = first.filter(pl.col("age_band").is_not_null() & (pl.col("record_count") == 1))["profile_id"][0]
    with loaded.engine.begin() as conn:
        record_id, key = conn.execute(
            select(t.records.c.id, t.records.c.key_id)
            .join(t.record_links, t.record_links.c.record_id == t.records.c.id)
            .where(t.record_links.c.profile_id == person)
        ).one()
        token = loaded.cipher(conn, key).encrypt("1931-02-03", record_id=record_id, field="date_of_birth")
        conn.execute(update(t.records).where(t.records.c.id == record_id).values(date_of_birth_enc=token))
    third = _assert_same(loaded, profiling)
    assert third.filter(pl.col("profile_id") == person)["age_band"].to_list() == ["65+"]


def test_erasure_shreds_the_cache(loaded: CustomerStore) -> None:
    profiling = classifier_context("profiling")
    _one_record_each(loaded)
    frame = _assert_same(loaded, profiling)
    rows = _cache_rows(loaded)  # the birth years, and on SQLite the golden cache
    assert {name for name, _, _ in rows} >= {"birth_years"}
    loaded.erase_subject(DSR, frame["profile_id"][0])
    assert _cache_rows(loaded) == [] and loaded.keystore.get([key_id for _, key_id, _ in rows]) == {}
    _assert_same(loaded, profiling)
    assert len(_cache_rows(loaded)) == len(rows)


def test_records_read_in_small_ranges(loaded: CustomerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    if loaded.engine.dialect.name != "sqlite":
        pytest.skip("rowid ranges are SQLite's")
    monkeypatch.setattr(frame_module, "RECORDS_CHUNK", 2)
    with loaded.engine.begin() as conn:  # a gap of many empty ranges
        conn.exec_driver_sql("UPDATE records SET rowid = rowid + 50 WHERE rowid > 3")
    for ctx in CONTEXTS:
        _assert_same(loaded, ctx)
