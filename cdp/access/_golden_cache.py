"""The golden cache: survivorship's results per active profile, kept between reads (SQLite).

Why it exists: even over columns (``_profile_frame.py``), a segment refresh
reads every record and decrypts the dates of birth survivorship picks: about
5 s at 1M profiles, on every refresh, for results that change only where
records, links or a profile's status changed (docs/benchmarks.md, Segments).
This keeps, per active profile, what survivorship keeps *before any policy*:
the clear fields, sources, record count, and the date of birth (or the birth
year that settles the age band, with the record to decrypt the date from on a
day it no longer does). A warm read decrypts one blob; the consent filter,
masking and the age band for ``today`` are applied by the caller on every read
from the current consent ledger and policy decision.

Guarantees:

- **never out of date**: while the cache exists, triggers (migration 0005) add
  every profile a change to ``records``, ``record_links`` or a profile's status
  touches to ``golden_dirty``, in the statement that makes the change; a read
  recomputes those profiles (a whole rebuild when there are many) before using
  the rest. SQLite's transactions are serializable: a read cannot save a cache
  older than a change committed meanwhile. The cache is bound to the
  survivorship rules and trusted sources it was computed under (another set
  reads as no cache);
- **encryption**: one ``analytic_cache`` row, ``golden_profiles``, Arrow IPC
  under AES-256-GCM with a data key of its own in the key store (``_analytic_cache.py``);
  plaintext exists only in memory during a read;
- **shredding**: any key shred drops it (``shred_keys``: a date decrypted under
  a key now destroyed must not outlive it); erasure, its replay after a
  restore, and retention destroy its key (``shred_analytic_copies``), so copies
  in backups become unreadable with the person. A rebuilt cache keeps its key.

Compliance reads (restricted people too), PostgreSQL and configurations the column
path does not cover take the uncached path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

import polars as pl
from sqlalchemy import Connection, delete, select

from cdp.access import _profile_frame as frame
from cdp.access import _tables as t
from cdp.access._analytic_cache import GOLDEN_PROFILES, load, save
from cdp.access._core import StoreCore
from cdp.access._profiles import ProfileMixin
from cdp.crypto.keyring import FileKeyring, Keyring
from cdp.model import CLEAR_FIELDS

VERSION = 1  # of the cache's columns: a cache of another version is rebuilt
REBUILD_SHARE = 5  # more out-of-date profiles than 1 in this many: rebuild it all (one scan is cheaper)


def cacheable(conn: Connection, survivorship: dict[str, str], keyring: Keyring, include_restricted: bool) -> bool:
    """Whether a read may use the cache: SQLite (whose triggers keep it), the active profiles
    only, every rule the column path has, dates decrypted in this process."""
    rules = {survivorship.get(f, "most_recent") for f in (*CLEAR_FIELDS, "date_of_birth")}
    return (
        conn.dialect.name == "sqlite"
        and not include_restricted
        and rules <= frame._RULES
        and isinstance(keyring, FileKeyring)
    )


def _rules(survivorship: dict[str, str], trusted: Sequence[str]) -> str:
    """The rules the cache was computed under, bound to it as associated data."""
    chosen = {f: survivorship.get(f, "most_recent") for f in (*CLEAR_FIELDS, "date_of_birth")}
    return json.dumps([VERSION, chosen, list(trusted)], sort_keys=True)


def _compute(
    store: ProfileMixin,
    conn: Connection,
    survivorship: dict[str, str],
    trusted: Sequence[str],
    today: date,
    profile_ids: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The cache's rows of every active profile (or of these), sorted by id."""
    records = frame._records(store, conn, include_restricted=False, with_birth_dates=True, profile_ids=profile_ids)
    single, multi = frame._single_and_multi(records)
    clear = frame._clear_values(single, multi, CLEAR_FIELDS, survivorship, trusted)
    rule = survivorship.get("date_of_birth", "most_recent")
    dates = frame._birth_dates(store, conn, single, multi, rule, trusted, today)
    return clear.join(dates, on="profile_id", how="left", maintain_order="left")


def _unsettled(years: pl.Series, today: date) -> pl.Series:
    """Per profile, whether its cached birth year no longer settles the age band ``today``."""
    settled = pl.Series(list(frame._year_bands(years, today)), dtype=pl.Int16)
    return years.is_not_null() & ~years.is_in(settled.implode())


def _settle(store: StoreCore, conn: Connection, base: pl.DataFrame, today: date) -> pl.DataFrame | None:
    """``base`` with the dates of birth decrypted whose cached year no longer settles the band
    ``today`` (a birthday now decides it); None when every year still does."""
    due = base.filter(_unsettled(base["_year"], today))
    if not due.height:
        return None
    candidates = due.select(pl.col("_dob_record").alias("record_id"), pl.col("_dob_key").alias("key_id"))
    candidates = candidates.join(frame._tokens(conn, candidates["record_id"]), on="record_id", how="left")
    wrapped = store.keystore.get(candidates["key_id"].unique().to_list())
    found = due.select("profile_id", frame._decrypt_birth_dates(candidates, wrapped, store.keyring).alias("_found"))
    hit = pl.col("profile_id").is_in(due["profile_id"].implode())
    return (
        base.join(found, on="profile_id", how="left", maintain_order="left")
        .with_columns(
            pl.when(hit).then(pl.col("_found")).otherwise(pl.col("_dob")).alias("_dob"),
            pl.when(hit).then(None).otherwise(pl.col("_year")).cast(pl.Int16).alias("_year"),
        )
        .drop("_found")
    )


def cached_base(
    store: ProfileMixin,
    conn: Connection,
    survivorship: dict[str, str],
    trusted: Sequence[str],
    today: date,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Per active profile, sorted by id: the clear fields survivorship keeps, sources, record
    count and ``_profile_frame.DATES``, before consent and masking: the cache brought up to
    date (the out-of-date profiles recomputed), or computed and cached.

    ``columns``: the ones the caller reads (at least; ``profile_id`` and ``_year`` come too).
    When the cache is up to date, only those are decoded (a third less of its read at 1M
    profiles: docs/benchmarks.md, Segments, fourteenth session); an update reads it whole.
    """
    rules = _rules(survivorship, trusted)
    dirty = list(conn.execute(select(t.golden_dirty.c.profile_id)).scalars())
    if columns is not None and not dirty:
        wanted = list(dict.fromkeys(["profile_id", *columns, "_year"]))
        part, _ = load(store, conn, GOLDEN_PROFILES, rules, columns=wanted)
        if part is not None and not _unsettled(part["_year"], today).any():
            return part
    base, key = load(store, conn, GOLDEN_PROFILES, rules)
    changed = base is None or bool(dirty)
    if base is None or len(dirty) * REBUILD_SHARE > base.height:
        base = _compute(store, conn, survivorship, trusted, today)
    elif dirty:
        fresh = _compute(store, conn, survivorship, trusted, today, profile_ids=dirty)
        kept = base.filter(~pl.col("profile_id").is_in(pl.Series(dirty, dtype=pl.String).implode()))
        base = kept.merge_sorted(fresh.select(base.columns), key="profile_id")  # both sorted by id
    settled = _settle(store, conn, base, today)
    if settled is not None:
        base, changed = settled, True
    if changed:
        save(conn, GOLDEN_PROFILES, base, key, rules)
        conn.execute(delete(t.golden_dirty))
    return base
