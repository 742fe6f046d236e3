"""The access layer's core: one transaction = one policy decision + one audit row.

Every method of :class:`~cdp.access.store.CustomerStore` runs its database
work inside :meth:`StoreCore.access`, which

1. asks the policy engine (default deny, purpose limitation) and, on a denial,
   writes the denial to the audit log and raises ``AccessDenied``;
2. opens a transaction on the system of record;
3. lets the caller work and name the subjects it touched;
4. appends the audit record in that same transaction, so a failed audit write
   means the access did not happen.

It also holds the per-person data keys (unwrapped on demand, cached in memory
only) and the blind indexer.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import OperationalError

from cdp._exceptions import AccessDenied, DecryptionFailed, PurposeRequired, StorageError
from cdp.access import _tables as t
from cdp.access import audit
from cdp.access.context import AccessContext
from cdp.crypto import BlindIndexer, FieldCipher, Keyring, WrappedKey, new_data_key
from cdp.crypto.envelope import DATA_KEY_SIZE, new_data_keys
from cdp.crypto.keystore import DataKeyStore
from cdp.policy import Decision, PolicyEngine
from cdp.settings import Settings


def now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def ordered_ids(prefix: str, count: int) -> list[str]:
    """``count`` new ids shaped like ``new_id(prefix)``, time-ordered: 12 hex digits of
    milliseconds, then 48 random bits; one call's ids sorted.

    Ids that are inserted in bulk into indexed columns (records, data keys) then append to
    their B-trees instead of landing on random pages: at 1M existing records, inserting 100k
    with a random data-key id cost 2.05 s of CPU in its index against 0.42 s time-ordered.
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"[-12:]
    tails = os.urandom(6 * count).hex()
    return sorted([f"{prefix}_{stamp}{tails[i : i + 12]}" for i in range(0, 12 * count, 12)])


_ANALYZED_TABLES = ("records", "blind_indexes", "events", "consents", "subject_keys", "record_links", "profiles")
"""Tables bulk writes grow: ingestion, and identity runs that link records to profiles."""


@dataclass
class Access:
    """One policy-checked, audited unit of work."""

    connection: Connection
    decision: Decision
    context: AccessContext
    subjects: list[str] = field(default_factory=list)
    subject_count: int | None = None
    detail: str = ""

    def touch(self, subjects: Iterable[str]) -> None:
        self.subjects.extend(subjects)


class StoreCore:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        policy: PolicyEngine,
        keyring: Keyring,
        indexer: BlindIndexer,
        signer: Any,
        keystore: DataKeyStore,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.policy = policy
        self.keyring = keyring
        self.indexer = indexer
        self.signer = signer
        self.keystore = keystore
        self._ciphers: dict[str, FieldCipher] = {}
        self._shreds_seen = keystore.last_shred()
        self._last_checkpoint_seq: int | None = None
        self._rows_since_analyze = 0
        self._rows_at_analyze = 0

    # -- transactions ---------------------------------------------------------------------------

    @property
    def checkpoints_file(self) -> Path:
        return self.settings.data_dir / "audit-checkpoints.jsonl"

    def _audit_denial(
        self, ctx: AccessContext, action: str, resource: str, fields: Iterable[str], decision: Decision
    ) -> None:
        with self.engine.begin() as connection:
            audit.append(
                connection,
                audit.AuditEntry(
                    ctx.request_id,
                    ctx.actor or "-",
                    ctx.role or "-",
                    ctx.purpose or "-",
                    action,
                    resource,
                    list(fields),
                    [],
                    0,
                    "deny",
                    decision.rule,
                    decision.reason,
                ),
            )

    @contextmanager
    def access(
        self, ctx: AccessContext, *, action: str, resource: str, fields: Iterable[str] = (), detail: str = ""
    ) -> Iterator[Access]:
        field_list = list(fields)
        if not ctx.actor:
            decision = Decision(False, "default-deny", "no actor declared: every access must name its actor")
        else:
            decision = self.policy.decide(
                role=ctx.role, purpose=ctx.purpose, action=action, fields=field_list, actor=ctx.actor
            )
        if not decision.allowed:
            self._audit_denial(ctx, action, resource, field_list, decision)
            error = PurposeRequired if "declared" in decision.reason else AccessDenied
            raise error(f"access denied: {decision.reason}", rule=decision.rule)
        self._forget_keys_shredded_elsewhere()
        try:
            with self.engine.begin() as connection:
                work = Access(connection, decision, ctx, detail=detail)
                yield work
                count = work.subject_count if work.subject_count is not None else len(set(work.subjects))
                appended = audit.append(
                    connection,
                    audit.AuditEntry(
                        ctx.request_id,
                        ctx.actor,
                        ctx.role,
                        ctx.purpose,
                        action,
                        resource,
                        field_list,
                        sorted(set(work.subjects)),
                        count,
                        "allow",
                        decision.rule,
                        work.detail,
                    ),
                )
        except OperationalError as exc:
            raise StorageError(f"database error during {action} {resource}: {str(exc.orig).splitlines()[0]}") from exc
        self._maybe_checkpoint(appended)

    def note_bulk_write(self, rows: int) -> None:
        """Refresh PostgreSQL's planner statistics once the rows written since the last refresh
        reach the table sizes it last saw (so about log2(N) times while a store grows to N rows).

        Plans chosen on empty-table statistics turn index lookups into nested loops over whole
        tables once they are full; autovacuum fixes that only a minute later, or never when it is
        off. SQLite plans from its indexes and needs nothing here.
        """
        if self.engine.dialect.name != "postgresql" or rows <= 0:
            return
        self._rows_since_analyze += rows
        if self._rows_since_analyze < max(1_000, self._rows_at_analyze):
            return
        with self.engine.begin() as connection:
            connection.exec_driver_sql(f"ANALYZE {', '.join(_ANALYZED_TABLES)}")
        self._rows_at_analyze += self._rows_since_analyze
        self._rows_since_analyze = 0

    def _maybe_checkpoint(self, appended: int) -> None:
        """Sign a checkpoint once ``audit_checkpoint_every`` rows have been appended since the last one.

        The sequence number of the last checkpoint is remembered, so most accesses decide without
        a second transaction; when it looks due, the database decides (another process may have
        signed one meanwhile). The checkpoint is written after the access committed, so it never
        signs a row that could still roll back.
        """
        last = self._last_checkpoint_seq
        if last is not None and appended - last < self.settings.audit_checkpoint_every:
            return
        with self.engine.begin() as connection:
            self._last_checkpoint_seq = audit.last_checkpoint_seq(connection)
            if audit.rows_since_checkpoint(connection) >= self.settings.audit_checkpoint_every:
                self._last_checkpoint_seq = audit.checkpoint(connection, self.signer, self.checkpoints_file)

    def checkpoint_now(self) -> int | None:
        with self.engine.begin() as connection:
            signed = audit.checkpoint(connection, self.signer, self.checkpoints_file)
            self._last_checkpoint_seq = signed
            return signed

    # -- keys -----------------------------------------------------------------------------------

    def create_keys(self, count: int) -> list[tuple[str, FieldCipher, str]]:
        """``count`` new data keys as (key id, cipher, KEK id), wrapped under the current KEK and
        put in the key store in one commit. The key store commits before the database
        transaction that references the keys: a failed batch leaves unused keys, never a record
        whose key is missing."""
        if count <= 0:
            return []
        key_ids = ordered_ids("k", count)
        aads = [key_id.encode() for key_id in key_ids]
        wrap_many = getattr(self.keyring, "wrap_many", None)  # optional: FileKeyring has it, plugins may not
        if count > 1 and callable(wrap_many):
            # One CSPRNG read for all the keys (independent 32-byte slices), one check of the current
            # KEK and one associated-data head per call: new people are a third of an ingest's records.
            raw = new_data_keys(count)
            data_keys = [raw[i * DATA_KEY_SIZE : (i + 1) * DATA_KEY_SIZE] for i in range(count)]
            wrapped_list: list[WrappedKey] = wrap_many(data_keys, aads)
        else:
            data_keys = [new_data_key() for _ in key_ids]
            wrapped_list = [self.keyring.wrap(k, aad=a) for k, a in zip(data_keys, aads, strict=True)]
        made = [
            (key_id, FieldCipher(data_key, key_id), wrapped.kek_id)
            for key_id, data_key, wrapped in zip(key_ids, data_keys, wrapped_list, strict=True)
        ]
        self.keystore.put(zip(key_ids, wrapped_list, strict=True))
        for key_id, cipher, _ in made:
            self._ciphers[key_id] = cipher
        return made

    def create_key(self, connection: Connection) -> tuple[str, FieldCipher]:
        """One new data key, its metadata row inserted in the caller's transaction."""
        key_id, cipher, kek_id = self.create_keys(1)[0]
        connection.execute(insert(t.subject_keys).values(id=key_id, kek_id=kek_id, created_at=now()))
        return key_id, cipher

    def cipher(self, connection: Connection, key_id: str) -> FieldCipher:
        """The person's cipher; raises DecryptionFailed if the key was shredded."""
        cached = self._ciphers.get(key_id)
        if cached is not None:
            return cached
        self.load_ciphers(connection, [key_id])
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionFailed(f"data key {key_id} has been destroyed (crypto-shredded)")
        return cipher

    def load_ciphers(self, connection: Connection, key_ids: Iterable[str]) -> set[str]:
        """Unwrap the data keys not yet in memory; returns those of ``key_ids`` that are alive (a
        crypto-shredded key stays absent, so callers can tell the records still readable)."""
        wanted = set(key_ids)
        self.unwrap_keys(self.wrapped_keys(wanted))
        return {k for k in wanted if k in self._ciphers}

    def wrapped_keys(self, key_ids: Iterable[str]) -> dict[str, WrappedKey]:
        """The wrapped data keys, among ``key_ids``, not yet unwrapped in memory (shredded ones are absent)."""
        return self.keystore.get([k for k in set(key_ids) if k not in self._ciphers])

    def unwrap_keys(self, wrapped: Mapping[str, WrappedKey]) -> None:
        """Unwrap data keys under the keyring into ciphers held in memory for this store."""
        unwrap, ciphers = self.keyring.unwrap, self._ciphers
        for key_id, blob in wrapped.items():
            ciphers[key_id] = FieldCipher(unwrap(blob, aad=key_id.encode()), key_id)

    def _forget_keys_shredded_elsewhere(self) -> None:
        """Drop from memory the data keys another process has crypto-shredded since the last access.

        Keys unwrapped for writes and for the per-person read paths are kept in ``_ciphers``
        between accesses; without this, a long-running process (the API server) would go on
        decrypting a person whose key a CLI erasure had destroyed. Only the shredded keys are
        removed (a thread of the same store using the others is not disturbed).
        """
        seen, shredded = self.keystore.shredded_since(self._shreds_seen)
        for key_id in shredded:
            self._ciphers.pop(key_id, None)
        self._shreds_seen = seen

    def has_cipher(self, key_id: str) -> bool:
        return key_id in self._ciphers

    def shred_keys(self, connection: Connection, key_ids: Iterable[str]) -> int:
        """Destroy data keys: every copy of the ciphertext they protect becomes unreadable."""
        ids = sorted(set(key_ids))
        for start in range(0, len(ids), 900):
            connection.execute(
                update(t.subject_keys)
                .where(t.subject_keys.c.id.in_(ids[start : start + 900]))
                .values(destroyed_at=now())
            )
        removed = self.keystore.destroy(ids)
        for key_id in ids:
            self._ciphers.pop(key_id, None)
        # Caches derived from people's fields (birth years) go with any shredded key: a read
        # must never take from a cache what it can no longer decrypt (``_analytic_cache.py``).
        cache_keys = set(connection.execute(select(t.analytic_cache.c.key_id)).scalars()) - set(ids)
        connection.execute(delete(t.analytic_cache))
        connection.execute(delete(t.golden_dirty))  # what was out of date in the golden cache
        if cache_keys:
            self.keystore.destroy(sorted(cache_keys))
            connection.execute(
                update(t.subject_keys).where(t.subject_keys.c.id.in_(sorted(cache_keys))).values(destroyed_at=now())
            )
        return removed

    def rewrap_all(self, connection: Connection) -> int:
        """Re-wrap every live data key under the keyring's current KEK (key rotation)."""
        current = self.keyring.current_kek_id()
        rewrapped: list[tuple[str, WrappedKey]] = []
        for key_id, wrapped in self.keystore.not_under(current):
            data_key = self.keyring.unwrap(wrapped, aad=key_id.encode())
            rewrapped.append((key_id, self.keyring.wrap(data_key, aad=key_id.encode())))
        self.keystore.put(rewrapped)
        for start in range(0, len(rewrapped), 900):
            chunk = [k for k, _ in rewrapped[start : start + 900]]
            connection.execute(update(t.subject_keys).where(t.subject_keys.c.id.in_(chunk)).values(kek_id=current))
        return len(rewrapped)

    def hash_evidence(self, evidence: dict[str, Any] | None) -> dict[str, Any] | None:
        """Consent evidence as stored: an IP address becomes a keyed hash (proof without the address)."""
        if not evidence:
            return None
        out = {k: v for k, v in evidence.items() if k != "ip"}
        if evidence.get("ip"):
            out["ip_hash"] = self.indexer.index("ip", str(evidence["ip"]))
        return out

    def rotate_keys(self, ctx: AccessContext) -> tuple[int, str]:
        """New key-encryption key; every data key re-wrapped under it in one transaction."""
        with self.access(ctx, action="manage", resource="subject_keys") as work:
            kek = self.keyring.rotate()
            count = self.rewrap_all(work.connection)
            work.subject_count = count
            work.detail = f"rotated to {kek}, re-wrapped {count}"
        return count, kek

    def decrypt_or_none(
        self, connection: Connection, key_id: str, token: bytes | None, record_id: str, name: str
    ) -> str | None:
        """The field's plaintext; DecryptionFailed / KeyUnavailable (never naming a value) otherwise."""
        if token is None:
            return None
        return self.cipher(connection, key_id).decrypt(token, record_id=record_id, field=name)
