"""Reading profiles: golden record, consent row filter, field masking.

This is the read path every consumer of profile data goes through (CLI, API,
segments, exports, data-subject requests). Only the fields the decision
allows are decrypted; masked fields are masked here; fields the policy denies
never leave this module; people whose consent state excludes them from the
declared purpose are filtered out here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from operator import itemgetter
from typing import Any

import polars as pl
from sqlalchemy import Connection, Select, func, literal_column, select

from cdp.access import _tables as t
from cdp.access._parallel import SharedWork, map_split, will_share
from cdp.access._profile_rows import (
    _EPOCH,
    _PROFILE,
    ReadPlan,
    RowAssemblyMixin,
    _collector_paused,
    _mask_function,
)
from cdp.access.audit import MAX_SUBJECTS_LISTED
from cdp.access.context import AccessContext
from cdp.crypto.keyring import FileKeyring
from cdp.model import CLEAR_FIELDS, IDENTITY_FIELDS

COMPLIANCE_PURPOSES = frozenset({"compliance", "dsr"})
# The share of a whole-table read fetched before the child starts (see ``_first_share_end``): this
# process then fetches the rest and assembles it while the child assembles the first share, and
# both take what is left of the first share.
FIRST_SHARE = 0.62
PROFILE_FIELDS = (*IDENTITY_FIELDS, *CLEAR_FIELDS, "age_band", "sources", "record_count", "first_seen", "last_seen")


def _driver_rows(conn: Connection, query: Select[Any]) -> list[Any]:
    """Run ``query`` on the driver's own cursor (same connection, same transaction) and return its tuples.

    A bulk read fetches one row per record of every profile; SQLAlchemy's result rows and type
    processing cost more than the driver's fetch. Only untyped values come back (text, bytes, and
    on SQLite DATETIME as text, which :func:`_seen` reads).
    """
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    args: Any = tuple(params[name] for name in compiled.positiontup or ()) if compiled.positional else params
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), args)
        rows = list(cursor.fetchall())
        return rows
    finally:
        cursor.close()


class ProfileMixin(RowAssemblyMixin):
    def _profile_records(
        self,
        conn: Connection,
        profile_ids: Sequence[str] | None,
        *,
        include_restricted: bool = False,
        identity_fields: Iterable[str] = IDENTITY_FIELDS,
        part: tuple[Any, Any] = (None, None),
    ) -> dict[str, list[Any]]:
        """The active records of each profile, with only the encrypted columns asked for; with
        ``part`` (low, high), of a part of the profiles table (see :meth:`_first_share_end`)."""
        columns = [
            t.record_links.c.profile_id,
            t.records.c.id,
            t.records.c.source,
            t.records.c.key_id,
            func.coalesce(t.records.c.occurred_at, t.records.c.received_at),
            *(t.records.c[n] for n in CLEAR_FIELDS),
            *(t.records.c[f"{n}_enc"] for n in identity_fields),
        ]
        query = (
            select(*columns)
            .join(t.records, t.records.c.id == t.record_links.c.record_id)
            .join(t.profiles, t.profiles.c.id == t.record_links.c.profile_id)
            .where(t.record_links.c.unlinked_at.is_(None), t.records.c.status == "active")
        )
        # A restricted person's data is kept but not processed (only compliance work may read it).
        query = query.where(t.profiles.c.status == "active") if not include_restricted else query
        low, high = part
        position = literal_column("profiles.rowid") if conn.dialect.name == "sqlite" else t.profiles.c.id
        query = query.where(position >= low) if low is not None else query
        query = query.where(position < high) if high is not None else query
        grouped: dict[str, list[Any]] = defaultdict(list)
        ids = list(profile_ids) if profile_ids is not None else None
        chunks = [ids[i : i + 900] for i in range(0, len(ids), 900)] if ids is not None else [None]
        for chunk in chunks:
            q = query if chunk is None else query.where(t.record_links.c.profile_id.in_(chunk))
            for row in _driver_rows(conn, q):
                grouped[row[_PROFILE]].append(row)
        return grouped

    def consent_states(
        self, conn: Connection, purpose: str, profile_ids: Sequence[str] | None = None
    ) -> dict[str, str]:
        """profile id -> latest consent status for ``purpose`` (derived from the append-only ledger)."""
        query = (
            select(t.record_links.c.profile_id, t.consents.c.status, t.consents.c.recorded_at, t.consents.c.id)
            .join(t.record_links, t.record_links.c.record_id == t.consents.c.record_id)
            .where(t.consents.c.purpose == purpose, t.record_links.c.unlinked_at.is_(None))
        )
        if profile_ids is not None and len(profile_ids) <= 900:
            query = query.where(t.record_links.c.profile_id.in_(list(profile_ids)))
        rows = conn.execute(query).all()
        latest: dict[str, tuple[Any, int, str]] = {}
        for profile_id, status, recorded_at, seq in rows:
            stamp = (recorded_at.replace(tzinfo=None) if recorded_at else _EPOCH, int(seq))
            if profile_id not in latest or stamp > latest[profile_id][:2]:
                latest[profile_id] = (stamp[0], stamp[1], status)
        return {p: v[2] for p, v in latest.items()}

    def read_profiles(
        self,
        ctx: AccessContext,
        fields: Iterable[str],
        *,
        profile_ids: Sequence[str] | None = None,
        action: str = "read",
        with_provenance: bool = False,
        today: date | None = None,
    ) -> list[dict[str, Any]]:
        """Profiles as the policy lets this context see them (masked, consent-filtered)."""
        field_list = [f for f in fields if f != "profile_id"]
        with self.access(ctx, action=action, resource="profiles", fields=field_list) as work, _collector_paused():
            conn = work.connection
            decision = work.decision
            readable = [f for f in field_list if decision.fields[f].allowed]
            wanted = set(readable) | ({"date_of_birth"} if "age_band" in readable else set())
            identity_fields = [n for n in IDENTITY_FIELDS if n in wanted]
            purpose = decision.consent_purpose
            consent = None  # no consent filter: the purpose needs none
            if purpose is not None:
                consent = self.consent_states(conn, purpose) if purpose else {}
            read = ReadPlan(
                decision=decision,
                readable=readable,
                identity_fields=identity_fields,
                # Only what was asked is decrypted; the country is needed by the jurisdiction row filter.
                needed=[n for n in (*IDENTITY_FIELDS, *CLEAR_FIELDS) if n in wanted or n == "country"],
                plan=[(name, _mask_function(decision.fields[name].treatment, name)) for name in readable],
                consent=consent,
                today=today or date.today(),
                with_provenance=with_provenance,
            )
            include_restricted = ctx.purpose in COMPLIANCE_PURPOSES

            def fetch(part: tuple[Any, Any] = (None, None)) -> dict[str, list[Any]]:
                return self._profile_records(
                    conn, profile_ids, include_restricted=include_restricted, identity_fields=identity_fields, part=part
                )

            split = self._first_share_end(conn) if profile_ids is None else None
            if split is None:
                grouped = fetch()
                parts = map_split(self._assembler(grouped, read), sorted(grouped))
            else:
                # The child assembles the first profiles while this process fetches the others.
                # Every wrapped key in one scan, for both parts (the rest's key ids are not known
                # yet), read by SQLite in a thread while the first rows are fetched.
                keys_soon = self.keystore.every_blob_by_kek_soon() if isinstance(self.keyring, FileKeyring) else None
                try:
                    first = fetch((None, split))
                finally:
                    keys = keys_soon() if keys_soon is not None else None
                shared = SharedWork(self._assembler(first, read, keys), sorted(first), stream=True).start()
                try:
                    rest = fetch((split, None))
                    rest_parts = [self._assembler(rest, read, keys)(sorted(rest))]
                except BaseException:
                    shared.cancel()
                    raise
                parts = shared.finish() + rest_parts
            out = [row for rows, _ in parts for row in rows]
            if split is not None:  # two runs each sorted by id (a table part need not be an id range): one merge
                out.sort(key=itemgetter("profile_id"))
            excluded = sum(n for _, n in parts)
            # Sorted by id, so the audit record's listed subjects (the first MAX_SUBJECTS_LISTED) are its head.
            work.touch(r["profile_id"] for r in out[:MAX_SUBJECTS_LISTED])
            work.subject_count = len(out)
            work.detail = f"returned={len(out)} excluded_by_consent={excluded}"
            return out

    def _first_share_end(self, conn: Connection) -> Any:
        """Where a read of every profile cuts the profiles table in two, when the read is large
        enough to be shared with a forked child: the first :data:`FIRST_SHARE` of the rows,
        fetched before the fork, are shared; the rest are fetched while the child works, and
        assembled here. On SQLite the cut is a rowid (a range of rowids is read in place; a range
        of text ids costs a look-up per profile), elsewhere a profile id."""
        count = int(conn.execute(select(func.count()).select_from(t.profiles)).scalar() or 0)
        if not will_share(int(count * FIRST_SHARE)):
            return None
        position = literal_column("rowid") if conn.dialect.name == "sqlite" else t.profiles.c.id
        at = select(position).select_from(t.profiles).order_by(position).limit(1).offset(int(count * FIRST_SHARE))
        return conn.execute(at).scalar()

    def profile_frame(self, ctx: AccessContext, fields: Iterable[str], *, today: date | None = None) -> pl.DataFrame:
        rows = self.read_profiles(ctx, fields, today=today)
        return (
            pl.DataFrame(rows, infer_schema_length=None)
            if rows
            else pl.DataFrame({"profile_id": []}, schema={"profile_id": pl.String})
        )

    def counts(self, ctx: AccessContext) -> dict[str, int]:
        """Operational counts for summaries (no personal data)."""
        from sqlalchemy import func

        with self.access(ctx, action="read", resource="counts", fields=("record_count",)) as work:
            conn = work.connection
            out = {
                f"records:{source}": int(n)
                for source, n in conn.execute(select(t.records.c.source, func.count()).group_by(t.records.c.source))
            }
            out["profiles"] = int(
                conn.execute(
                    select(func.count()).select_from(t.profiles).where(t.profiles.c.status == "active")
                ).scalar()
                or 0
            )
            out["events"] = int(conn.execute(select(func.count()).select_from(t.events)).scalar() or 0)
            out["audit"] = int(conn.execute(select(func.count()).select_from(t.audit_log)).scalar() or 0)
            out["quarantine"] = int(
                conn.execute(
                    select(func.count()).select_from(t.quarantine).where(t.quarantine.c.status == "open")
                ).scalar()
                or 0
            )
            return out
