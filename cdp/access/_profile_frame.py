"""Profiles as a column frame for analytics (segments, insights), golden records built in Polars.

Why it exists: a segment refresh reads every active profile's country, state,
city, gender, age band, sources and record count. ``read_profiles`` builds a
Python golden record per profile (survivorship over its records, consent filter,
masking): 20-30 s at 1M profiles, two thirds of a refresh (docs/benchmarks.md,
Segments). The same rules expressed over columns take a fraction of that. Only
the date of birth (for the age band) needs decrypting, and only the one value
survivorship picks per person.

The result is exactly ``read_profiles`` turned into a frame (``tests/test_profile_frame.py``
compares the two on random stores): same survivorship (a rectification first,
then the field's rule; ties in the order the database returned the records),
same consent row filter, same masking, same audit record. Where this module
does not implement something (another field, a survivorship rule it does not
have for the date of birth, an external keyring), ``profile_frame`` uses
``read_profiles`` itself.

On SQLite, what survivorship keeps per active profile before any policy is kept
between reads in an encrypted golden cache (``_golden_cache.py``); the consent
filter, masking and the age band for ``today`` are applied here on every read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import Connection

from cdp.access._analytic_cache import BIRTH_YEAR_SCHEMA, BIRTH_YEARS, load, save
from cdp.access._core import StoreCore
from cdp.access._parallel import map_split
from cdp.access._profile_rows import _age_band_of
from cdp.access._profiles import COMPLIANCE_PURPOSES, ProfileMixin
from cdp.access.audit import MAX_SUBJECTS_LISTED
from cdp.access.context import AccessContext
from cdp.crypto.fields import RowDecryptor
from cdp.crypto.keyring import FileKeyring, Keyring, WrappedKey
from cdp.model import CLEAR_FIELDS
from cdp.policy import Decision
from cdp.policy.masking import age_band, treatment_function

RECTIFICATION = "rectification"
SUPPORTED = frozenset({*CLEAR_FIELDS, "age_band", "sources", "record_count"})
_RULES = frozenset({"most_recent", "most_trusted", "most_frequent", "longest"})


def supports(fields: Sequence[str], survivorship: dict[str, str], keyring: Keyring) -> bool:
    """Whether :func:`golden_frame` computes these fields (else the caller reads row by row)."""
    if not set(fields) <= SUPPORTED:
        return False
    rules = {survivorship.get(f, "most_recent") for f in fields if f in CLEAR_FIELDS}
    if not rules <= _RULES:
        return False
    if "age_band" in fields:
        if survivorship.get("date_of_birth", "most_recent") not in _RULES:
            return False
        return isinstance(keyring, FileKeyring)  # keys unwrapped in whichever process decrypts
    return True


_NAMES = ("profile_id", "record_id", "source", "key_id", "seen", *CLEAR_FIELDS)


RECORDS_CHUNK = 262_144  # records per range of rowid: SQLite builds one range's JSON while the last is decoded


def _decode(names: Sequence[str], row: Sequence[Any]) -> pl.DataFrame:
    """One statement's ``json_group_array`` per column, decoded by Polars (no Python row objects).

    An empty array decodes to one all-null row, which the callers' joins and filters drop.
    """
    text = pl.DataFrame([tuple(row)], schema=list(names), orient="row")
    return text.select(pl.col(n).str.json_decode(pl.List(pl.String)) for n in names).explode(list(names))


def _sqlite_rows(conn: Connection, *, include_restricted: bool, with_birth_dates: bool) -> pl.DataFrame:
    """The rows of :func:`_records` from three table scans joined in Polars.

    SQLite's own join looks up every link's record and profile in a B-tree by text key (1.7 s
    at 1M records, before any row reaches Python); scanning each table once and joining by
    hash is several times faster. The order is the links' (their rowid), as the row path's.
    A second thread decodes each statement's JSON while SQLite builds the next (the ``sqlite3``
    module lets go of the GIL while it steps).
    """
    columns = ["id", "source", "key_id", "coalesce(occurred_at, received_at)", *CLEAR_FIELDS]
    # Of the date of birth only its token's nonce (which ciphertext it is): the birth-year cache
    # settles most age bands with it, and the tokens to decrypt are fetched afterwards.
    columns += ["hex(substr(date_of_birth_enc, 2, 12))"] if with_birth_dates else []
    names = ["record_id", "source", "key_id", "seen", *CLEAR_FIELDS, *(["nonce"] if with_birth_dates else [])]
    sql = ", ".join(f"json_group_array({c})" for c in columns)
    where = "" if include_restricted else " WHERE status = 'active'"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            people_text = cursor.execute(f"SELECT json_group_array(id) FROM profiles{where}").fetchone()
            people = pool.submit(_decode, ["profile_id"], people_text)
            links_text = cursor.execute(
                "SELECT json_group_array(profile_id), json_group_array(record_id) FROM record_links"
                " WHERE unlinked_at IS NULL"
            ).fetchone()
            links = pool.submit(_decode, ["profile_id", "record_id"], links_text)
            low = cursor.execute("SELECT min(rowid) FROM records").fetchone()[0]
            high = cursor.execute("SELECT max(rowid) FROM records").fetchone()[0]
            parts: list[Future[pl.DataFrame]] = []
            start = low
            while start is not None and high is not None and start <= high:
                text = cursor.execute(
                    f"SELECT {sql} FROM records WHERE status = 'active' AND rowid >= ? AND rowid < ?",
                    [start, start + RECORDS_CHUNK],
                ).fetchone()
                parts.append(pool.submit(_decode, names, text))
                start += RECORDS_CHUNK
            frames = [part.result() for part in parts]
            people_frame, links_frame = people.result(), links.result()
    finally:
        cursor.close()
    records = (
        pl.concat(frames).filter(pl.col("record_id").is_not_null())
        if frames
        else pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    )
    if with_birth_dates:  # hex text back to bytes; SQLite's hex() of NULL is '' (no token)
        records = records.with_columns(
            pl.when(pl.col("nonce") != "").then(pl.col("nonce").str.decode("hex")).alias("nonce")
        )
    joined = links_frame.join(people_frame, on="profile_id", how="semi", maintain_order="left").join(
        records, on="record_id", how="inner", maintain_order="left"
    )
    return joined.select(*_NAMES, *(["nonce"] if with_birth_dates else []))


def _records(
    store: ProfileMixin,
    conn: Connection,
    *,
    include_restricted: bool,
    with_birth_dates: bool,
    profile_ids: Sequence[str] | None = None,
) -> pl.DataFrame:
    """One row per active record of every (active) profile, in the database's order (``_n``);
    of the ``profile_ids`` only, when given (SQLite: the golden cache's out-of-date rows)."""
    names = [*_NAMES, *(["dob_token"] if with_birth_dates else [])]
    if profile_ids is not None:
        frame = _subset_rows(conn, profile_ids, names)
    elif conn.dialect.name == "sqlite":
        frame = _sqlite_rows(conn, include_restricted=include_restricted, with_birth_dates=with_birth_dates)
    else:
        frame = _driver_rows(
            store, conn, names, include_restricted=include_restricted, with_birth_dates=with_birth_dates
        )
    if with_birth_dates and "dob_token" in frame.columns:
        frame = frame.with_columns(pl.col("dob_token").bin.slice(1, 12).alias("nonce"))
    frame = frame.with_row_index("_n")
    seen = frame["seen"]
    if seen.dtype == pl.String:  # SQLite: SQLAlchemy's DATETIME text, UTC without an offset
        seen = seen.str.to_datetime(time_unit="us", strict=False)
    elif isinstance(seen.dtype, pl.Datetime) and seen.dtype.time_zone is not None:
        seen = seen.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    # Empty text counts as no value, as in the row path (``if value``).
    texts = [pl.when(pl.col(n).cast(pl.String) != "").then(pl.col(n).cast(pl.String)).alias(n) for n in CLEAR_FIELDS]
    return frame.with_columns(seen.alias("seen"), *texts)


def _driver_rows(
    store: ProfileMixin, conn: Connection, names: Sequence[str], *, include_restricted: bool, with_birth_dates: bool
) -> pl.DataFrame:
    """The rows of :func:`_records` as the row path reads them (other databases than SQLite):
    ``_profile_records``' SQL join, in its order."""
    grouped = store._profile_records(
        conn, None, include_restricted=include_restricted, identity_fields=["date_of_birth"] if with_birth_dates else []
    )
    return _rows_frame([row for records in grouped.values() for row in records], names)


def _subset_rows(conn: Connection, profile_ids: Sequence[str], names: Sequence[str]) -> pl.DataFrame:
    """The rows of :func:`_records` for some active profiles (SQLite), in the links' order as
    :func:`_sqlite_rows` (so ties among a person's records fall as in the full read)."""
    columns = ["r.id", "r.source", "r.key_id", "coalesce(r.occurred_at, r.received_at)"]
    columns += [f"r.{n}" for n in CLEAR_FIELDS] + (["r.date_of_birth_enc"] if "dob_token" in names else [])
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        rows = cursor.execute(
            f"SELECT l.profile_id, {', '.join(columns)} FROM record_links l"
            " JOIN records r ON r.id = l.record_id JOIN profiles p ON p.id = l.profile_id"
            " WHERE l.unlinked_at IS NULL AND r.status = 'active' AND p.status = 'active'"
            " AND l.profile_id IN (SELECT value FROM json_each(?)) ORDER BY l.rowid",
            [json.dumps(list(profile_ids))],
        ).fetchall()
    finally:
        cursor.close()
    return _rows_frame(rows, names)


def _rows_frame(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> pl.DataFrame:
    """Driver rows (the columns ``names``) as a frame."""
    if not rows:
        schema: dict[str, Any] = dict.fromkeys(names, pl.String)
        schema["seen"] = pl.Datetime("us")
        if "dob_token" in names:
            schema["dob_token"] = pl.Binary
        return pl.DataFrame(schema=schema)
    values = list(zip(*rows, strict=True))
    return pl.DataFrame(
        [
            pl.Series(name, column, dtype=pl.Binary if name == "dob_token" else None, strict=False)
            for name, column in zip(names, values, strict=True)
        ]
    )


def _ordered(records: pl.DataFrame, rule: str, trusted: Sequence[str]) -> pl.DataFrame:
    """Records in the order ``rule`` prefers them, ties in the database's order."""
    if rule == "most_trusted":
        rank = pl.col("source").replace_strict(
            {s: i for i, s in enumerate(trusted)}, default=len(trusted), return_dtype=pl.Int64
        )
        return records.sort([rank, pl.col("seen"), pl.col("_n")], descending=[False, True, False], nulls_last=True)
    return records.sort(["seen", "_n"], descending=[True, False], nulls_last=True)


def _survivor(records: pl.DataFrame, field: str, rule: str, trusted: Sequence[str]) -> pl.DataFrame:
    """profile_id, ``field``: the value survivorship keeps for each profile that has one."""
    valued = records.filter(pl.col(field).is_not_null())
    rectified = (
        valued.filter(pl.col("source") == RECTIFICATION).sort("_n").group_by("profile_id", maintain_order=True).first()
    )
    others = valued.filter(~pl.col("profile_id").is_in(rectified["profile_id"].implode()))
    ordered = _ordered(others, rule, trusted).with_row_index("_pos")
    if rule in ("most_recent", "most_trusted"):
        chosen = ordered.group_by("profile_id", maintain_order=True).first()
    else:
        per_value = ordered.group_by("profile_id", field).agg(
            pl.len().alias("_count"), pl.col("seen").max().alias("_latest"), pl.col("_pos").min().alias("_first")
        )
        weight = pl.col("_count") if rule == "most_frequent" else pl.col(field).str.len_chars()
        chosen = (
            per_value.sort(
                [weight, pl.col("_latest"), pl.col("_first")], descending=[True, True, False], nulls_last=True
            )
            .group_by("profile_id", maintain_order=True)
            .first()
        )
    return pl.concat([rectified.select("profile_id", field), chosen.select("profile_id", field)])


def _birth_date_candidates(
    records: pl.DataFrame, rule: str, trusted: Sequence[str], live: Sequence[str]
) -> pl.DataFrame:
    """The records whose date of birth survivorship may read: with a token and a live key (a
    shredded key reads as no value, as in the row path); for ``most_recent``/``most_trusted``
    only each profile's first in the rule's order (a rectification first)."""
    live_keys = pl.Series(live, dtype=pl.String).implode()
    valued = records.filter(pl.col("nonce").is_not_null() & pl.col("key_id").is_in(live_keys))
    if rule not in ("most_recent", "most_trusted"):
        return valued
    rectified = (
        valued.filter(pl.col("source") == RECTIFICATION).sort("_n").group_by("profile_id", maintain_order=True).first()
    )
    others = valued.filter(~pl.col("profile_id").is_in(rectified["profile_id"].implode()))
    chosen = _ordered(others, rule, trusted).group_by("profile_id", maintain_order=True).first()
    return pl.concat([rectified, chosen.select(rectified.columns)])


def _decrypt_birth_dates(candidates: pl.DataFrame, wrapped: dict[str, WrappedKey], keyring: Keyring) -> pl.Series:
    """The candidates' dates of birth, each decrypted under its person's key (empty: null).

    Split over two processes for large reads (``map_split``): a key is unwrapped in the
    process that decrypts with it, for that one value, and not kept.
    """
    unwrap = keyring.unwrap
    rows = list(candidates.select("record_id", "key_id", "dob_token").iter_rows())
    decrypt_row = RowDecryptor([("date_of_birth", 2)]).decrypt_row

    def key_of(key_id: str) -> bytes | None:
        blob = wrapped.get(key_id)
        return None if blob is None else unwrap(blob, aad=key_id.encode())

    def decrypt(part: Sequence[tuple[str, str, bytes]]) -> list[str | None]:
        return [decrypt_row(key_of, row[1], row[0], row).get("date_of_birth") for row in part]

    values = [v for part in map_split(decrypt, rows) for v in part] if rows else []
    return pl.Series("date_of_birth", values, dtype=pl.String)


def _consent_filter(
    frame: pl.DataFrame,
    decision: Decision,
    states: dict[str, str],
    allows: Callable[[Decision, str | None, str | None], bool],
) -> pl.DataFrame:
    """The profiles the purpose's consent rule lets through (``_consent_allows`` once per distinct case)."""
    if decision.consent_purpose is None:
        return frame
    if not states and all(allows(decision, None, c) for c in frame["country"].unique().to_list()):
        return frame  # no one has a consent state for it, and every country lets it through
    ledger = pl.DataFrame(
        {"profile_id": list(states), "_status": list(states.values())},
        schema={"profile_id": pl.String, "_status": pl.String},
    )
    cases = frame.select("profile_id", pl.col("country").alias("_country")).join(
        ledger, on="profile_id", how="left", maintain_order="left"
    )
    distinct = cases.select("_status", "_country").unique()
    verdicts = distinct.with_columns(
        pl.Series("_allowed", [allows(decision, s, c) for s, c in distinct.iter_rows()], dtype=pl.Boolean)
    )
    allowed = cases.join(verdicts, on=["_status", "_country"], how="left", nulls_equal=True, maintain_order="left")
    kept = allowed["_allowed"].fill_null(False)
    return frame if kept.all() else frame.filter(kept)  # everyone let through: no copy of the frame


def _single_and_multi(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The records of profiles with one record (most of them: no survivorship to run) and the rest."""
    counted = records.with_columns(pl.len().over("profile_id").alias("_count"))
    return counted.filter(pl.col("_count") == 1), counted.filter(pl.col("_count") > 1)


def _clear_values(
    single: pl.DataFrame,
    multi: pl.DataFrame,
    clear: Sequence[str],
    survivorship: dict[str, str],
    trusted: Sequence[str],
) -> pl.DataFrame:
    """profile_id, the clear fields, sources, record_count: one row per profile, sorted by id."""
    ones = single.select(
        "profile_id", *clear, pl.col("source").alias("sources"), pl.lit(1, pl.Int64).alias("record_count")
    )
    if not multi.height:
        return ones.sort("profile_id")
    many = multi.group_by("profile_id").agg(
        pl.col("source").unique().sort().str.join(",").alias("sources"),
        pl.len().cast(pl.Int64).alias("record_count"),
    )
    for name in clear:
        rule = survivorship.get(name, "most_recent")
        many = many.join(_survivor(multi, name, rule, trusted), on="profile_id", how="left")
    return pl.concat([ones, many.select(ones.columns)]).sort("profile_id")


def _tokens(conn: Connection, record_ids: pl.Series) -> pl.DataFrame:
    """record_id, dob_token of these records (the dates of birth a read has to decrypt).

    One statement with the ids as a JSON array (``json_each``), on the driver's cursor: a
    look-up per record in SQLite, not 900-id statements built by SQLAlchemy.
    """
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        rows = cursor.execute(
            "SELECT id, date_of_birth_enc FROM records WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(record_ids.to_list())],
        ).fetchall()
    finally:
        cursor.close()
    return pl.DataFrame(rows, schema={"record_id": pl.String, "dob_token": pl.Binary}, orient="row")


def _year_bands(years: pl.Series, today: date) -> dict[int, str]:
    """birth year -> age band today, for the years whose band a year settles (whatever the
    birthday, the age is ``today.year - year`` or one less: both must fall in one band)."""
    out: dict[int, str] = {}
    for year in years.drop_nulls().unique().to_list():
        older, younger = age_band(today.year - year), age_band(today.year - year - 1)
        if older == younger:
            out[year] = older
    return out


DATES = {"_dob": pl.String, "_year": pl.Int16, "_dob_record": pl.String, "_dob_key": pl.String}


def _birth_dates(
    store: StoreCore,
    conn: Connection,
    single: pl.DataFrame,
    multi: pl.DataFrame,
    rule: str,
    trusted: Sequence[str],
    today: date,
) -> pl.DataFrame:
    """profile_id and :data:`DATES` for every profile with a readable date of birth.

    ``_dob`` is the date survivorship keeps, decrypted. A profile with one record takes the
    birth year from the cache (``_analytic_cache.py``) instead when its token is the one the
    year was taken from and the year settles the band ``today``: ``_year``, with the record
    and key (``_dob_record``, ``_dob_key``) to decrypt the date with on a day it no longer
    does. Only the dates of birth survivorship weighs are read; the years of newly
    decrypted ones are added to the cache.
    """
    single = single.filter(pl.col("nonce").is_not_null())  # the nonce of the date-of-birth token
    multi = multi.filter(pl.col("nonce").is_not_null())
    # The cache exists only while no key has been shredded since it was built (``shred_keys``
    # drops it), so a year taken from it is one whose key is still live.
    cached, key = load(store, conn, BIRTH_YEARS)
    if cached is None:
        cached = pl.DataFrame(schema=BIRTH_YEAR_SCHEMA)
    single = single.join(cached, on=["record_id", "nonce"], how="left", maintain_order="left")
    settled = _year_bands(single["year"], today)
    single = single.with_columns(
        pl.col("year").replace_strict(settled, default=None, return_dtype=pl.String).alias("age_band")
    )
    known = single.filter(pl.col("age_band").is_not_null()).select(
        "profile_id",
        pl.col("year").alias("_year"),
        pl.col("record_id").alias("_dob_record"),
        pl.col("key_id").alias("_dob_key"),
    )
    unsettled = single.filter(pl.col("age_band").is_null())
    # fetched for every read, never kept: a key shredded by another process reads as no value
    wrapped = store.keystore.get(pl.concat([unsettled["key_id"], multi["key_id"]]).unique().to_list())
    live = pl.Series(list(wrapped), dtype=pl.String).implode()
    unsettled = unsettled.filter(pl.col("key_id").is_in(live))
    candidates = pl.concat(
        [
            unsettled.select(multi.columns),
            _birth_date_candidates(multi, rule, trusted, list(wrapped)).select(multi.columns),
        ]
    )
    if "dob_token" not in candidates.columns:
        candidates = candidates.join(_tokens(conn, candidates["record_id"]), on="record_id", how="left")
    decrypted = candidates.with_columns(_decrypt_birth_dates(candidates, wrapped, store.keyring))
    ones = decrypted.filter(pl.col("_count") == 1).select("profile_id", "record_id", "nonce", "date_of_birth")
    many = decrypted.filter(pl.col("_count") > 1)
    born = pl.concat([ones.select("profile_id", "date_of_birth"), _survivor(many, "date_of_birth", rule, trusted)])
    new = ones.filter(pl.col("record_id").is_in(unsettled.filter(pl.col("year").is_null())["record_id"].implode()))
    if new.height:
        years = new.select(
            "record_id",
            "nonce",
            pl.col("date_of_birth").str.to_date(strict=False).dt.year().cast(pl.Int16).alias("year"),
        ).filter(pl.col("year").is_not_null())
        kept = cached.filter(~pl.col("record_id").is_in(years["record_id"].implode()))
        save(conn, BIRTH_YEARS, pl.concat([kept, years]), key)
    dates = pl.concat([known, born.select("profile_id", pl.col("date_of_birth").alias("_dob"))], how="diagonal")
    return dates.select("profile_id", *(pl.col(n).cast(d) for n, d in DATES.items()))


def _with_bands(frame: pl.DataFrame, today: date) -> pl.DataFrame:
    """``frame`` (with the :data:`DATES` columns) with each profile's age band ``today``: from
    the birth year where it settles the band, else from the date of birth (``_age_band_of``,
    the row path's function, once per distinct date)."""
    settled = _year_bands(frame["_year"], today)
    bands = {v: _age_band_of(v, today) for v in frame["_dob"].drop_nulls().unique().to_list()}
    dated = {v: b for v, b in bands.items() if b is not None}
    return frame.with_columns(
        pl.coalesce(
            pl.col("_year").replace_strict(settled, default=None, return_dtype=pl.String),
            pl.col("_dob").replace_strict(dated, default=None, return_dtype=pl.String),
        ).alias("age_band")
    )


def golden_frame(
    conn: Connection,
    *,
    fields: Sequence[str],
    decision: Decision,
    survivorship: dict[str, str],
    trusted: Sequence[str],
    include_restricted: bool,
    store: ProfileMixin,
    today: date,
    consent_states: dict[str, str],
    consent_allows: Callable[[Decision, str | None, str | None], bool],
) -> tuple[pl.DataFrame, int]:
    """``read_profiles(fields)`` as a frame, and how many the consent filter excluded.

    ``fields`` are the readable ones (see the module docstring). The consent filter and
    masking are applied here, on every read, whether the values come from the cache or not.
    """
    bands = "age_band" in fields
    rule = survivorship.get("date_of_birth", "most_recent")
    from cdp.access import _golden_cache as golden  # it builds on this module

    cached = golden.cacheable(conn, survivorship, store.keyring, include_restricted)
    if cached:
        read = ["country", *fields, *(("_dob", "_year") if bands else ())]
        frame = golden.cached_base(store, conn, survivorship, trusted, today, [c for c in read if c != "age_band"])
    else:
        records = _records(store, conn, include_restricted=include_restricted, with_birth_dates=bands)
        single, multi = _single_and_multi(records)
        clear = [n for n in CLEAR_FIELDS if n in fields or n == "country"]
        frame = _clear_values(single, multi, clear, survivorship, trusted)
    before = frame.height
    frame = _consent_filter(frame, decision, consent_states, consent_allows)
    excluded = before - frame.height
    if bands:
        if not cached:
            kept = frame.select("profile_id")
            dates = _birth_dates(
                store,
                conn,
                single.join(kept, on="profile_id", how="semi"),
                multi.join(kept, on="profile_id", how="semi"),
                rule,
                trusted,
                today,
            )
            frame = frame.join(dates, on="profile_id", how="left", maintain_order="left")
        frame = _with_bands(frame, today)
    out = frame.select("profile_id", *fields)
    masked = []
    for name in fields:
        mask = treatment_function(decision.fields[name].treatment, name)
        if mask is not None:  # the same function as the row path, once per distinct value
            mapping = {v: mask(v) for v in out[name].drop_nulls().unique().to_list()}
            masked.append(pl.col(name).replace_strict(mapping, default=None, return_dtype=pl.String))
    # One chunk per column (the cache's IPC reads back in several): a frame put beside columns cut
    # into chunks otherwise makes Polars re-cut every column of the result at its next ``select``.
    return (out.with_columns(masked) if masked else out).rechunk(), excluded


class ProfileFrameMixin(ProfileMixin):
    def profile_frame(self, ctx: AccessContext, fields: Iterable[str], *, today: date | None = None) -> pl.DataFrame:
        """``read_profiles`` as a frame; analytics fields are built over columns (see the module docstring)."""
        field_list = [f for f in fields if f != "profile_id"]
        if not supports(field_list, self.settings.survivorship, self.keyring):
            return super().profile_frame(ctx, field_list, today=today)
        with self.access(ctx, action="read", resource="profiles", fields=field_list) as work:
            decision = work.decision
            purpose = decision.consent_purpose
            frame, excluded = golden_frame(
                work.connection,
                fields=[f for f in field_list if decision.fields[f].allowed],
                decision=decision,
                survivorship=self.settings.survivorship,
                trusted=self.settings.trusted_sources,
                include_restricted=ctx.purpose in COMPLIANCE_PURPOSES,
                store=self,
                today=today or date.today(),
                consent_states=self.consent_states(work.connection, purpose) if purpose else {},
                consent_allows=self._consent_allows,
            )
            # The audit record lists the first MAX_SUBJECTS_LISTED ids in order and counts them all:
            # the frame is sorted by id, so those are its head (no set of 1M ids to build and sort).
            work.touch(frame["profile_id"].head(MAX_SUBJECTS_LISTED).to_list())
            work.subject_count = frame.height
            work.detail = f"returned={frame.height} excluded_by_consent={excluded}"
            return frame
