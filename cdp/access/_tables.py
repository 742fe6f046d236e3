"""The customer tables. Private to ``cdp.access``: no other module may import this.

The schema itself is created only by the alembic migrations in
``cdp/migrations`` (``cdp db upgrade``); ``tests/test_migrations.py`` checks
that the migrations produce exactly these tables. Every column is classified
in ``policies/fields.yaml``. Direct identifiers live only in ``*_enc`` columns
as AES-256-GCM ciphertext under the person's data key.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

TS = DateTime(timezone=True)

sources = Table(
    "sources",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("kind", String(50), nullable=False),
    Column("created_at", TS, nullable=False),
)

subject_keys = Table(
    "subject_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kek_id", String(64), nullable=False),  # metadata only: the wrapped key lives in the key store
    Column("created_at", TS, nullable=False),
    Column("destroyed_at", TS, nullable=True),
)

records = Table(
    "records",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source", String(100), ForeignKey("sources.name"), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("source_record_id", String(200), nullable=False),
    # A message id's key (sha256 of source and message id), for records whose message id is not their
    # record id; NULL for the others, whose (source, stream, source_record_id) below is their key. A
    # partial index: those records write no entry (migration 0006).
    Column("idempotency_key", String(64), nullable=True),
    Column("received_at", TS, nullable=False),
    Column("occurred_at", TS, nullable=True),
    Column("key_id", String(40), ForeignKey("subject_keys.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # identity | event
    Column("payload_enc", LargeBinary, nullable=True),
    Column("email_enc", LargeBinary, nullable=True),
    Column("phone_enc", LargeBinary, nullable=True),
    Column("given_name_enc", LargeBinary, nullable=True),
    Column("family_name_enc", LargeBinary, nullable=True),
    Column("date_of_birth_enc", LargeBinary, nullable=True),
    Column("street_enc", LargeBinary, nullable=True),
    Column("loyalty_id_enc", LargeBinary, nullable=True),
    Column("user_id_enc", LargeBinary, nullable=True),
    Column("postcode", String(20), nullable=True),
    Column("city", String(100), nullable=True),
    Column("state", String(100), nullable=True),
    Column("country", String(2), nullable=True),
    Column("gender", String(20), nullable=True),
    Column("status", String(20), nullable=False, server_default="active"),
    UniqueConstraint("source", "stream", "source_record_id"),
    Index("ix_records_key_id", "key_id"),
    Index(
        "uq_records_idempotency_key",
        "idempotency_key",
        unique=True,
        sqlite_where=text("idempotency_key IS NOT NULL"),
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
)

blind_indexes = Table(
    "blind_indexes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(40), ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("digest", String(64), nullable=False),
    Index("ix_blind_indexes_kind_digest", "kind", "digest"),
    Index("ix_blind_indexes_record_id", "record_id"),
)

profiles = Table(
    "profiles",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("merged_into", String(40), nullable=True),
    # The few profiles that are not active (every events read asks); partial, so that no query
    # for the active ones (nearly all rows) is tempted to use an index.
    Index(
        "ix_profiles_inactive",
        "id",
        sqlite_where=text("status != 'active'"),
        postgresql_where=text("status != 'active'"),
    ),
)

identity_runs = Table(
    "identity_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Column("method", String(50), nullable=False),
    Column("stats", JSON, nullable=True),
)

record_links = Table(
    "record_links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(40), ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
    Column("profile_id", String(40), ForeignKey("profiles.id"), nullable=False),
    Column("linked_at", TS, nullable=False),
    Column("unlinked_at", TS, nullable=True),
    Column("reason", String(200), nullable=False),
    Column("run_id", String(40), nullable=True),
    Index("ix_record_links_record_id", "record_id"),
    Index("ix_record_links_profile_id", "profile_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("record_id", String(40), ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
    Column("source", String(100), nullable=False),
    Column("event_type", String(30), nullable=False),
    Column("event_name", String(200), nullable=True),
    Column("occurred_at", TS, nullable=False),
    Column("anonymous_key", String(64), nullable=True),
    Column("user_key", String(64), nullable=True),
    Column("profile_id", String(40), nullable=True),
    Column("revenue", Float, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("channel", String(20), nullable=True),
    Column("store_id", String(100), nullable=True),
    Column("category", String(100), nullable=True),
    Column("properties", JSON, nullable=True),
    Index("ix_events_profile_id", "profile_id"),
    Index("ix_events_record_id", "record_id"),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(40), nullable=True),
    Column("subject_key", String(64), nullable=True),  # blind index of the identifier the consent was given under
    Column("purpose", String(50), nullable=False),
    Column("status", String(20), nullable=False),  # granted | denied | withdrawn
    Column("basis", String(30), nullable=False),
    Column("source", String(100), nullable=False),
    Column("notice_version", String(50), nullable=True),
    Column("jurisdiction", String(10), nullable=True),
    Column("recorded_at", TS, nullable=False),
    Column("evidence", JSON, nullable=True),
    Index("ix_consents_record_id", "record_id"),
)

tags = Table(
    "tags",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("taxonomy", String(30), nullable=False),
    Column("kind", String(20), nullable=False),  # manual | rule
    Column("description", Text, nullable=True),
    Column("definition", JSON, nullable=True),
    Column("created_at", TS, nullable=False),
)

profile_tags = Table(
    "profile_tags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("profile_id", String(40), nullable=False),
    Column("tag", String(100), ForeignKey("tags.name"), nullable=False),
    Column("assigned_by", String(100), nullable=False),
    Column("assigned_at", TS, nullable=False),
    Column("removed_at", TS, nullable=True),
    Index("ix_profile_tags_profile_id", "profile_id"),
)

segments = Table(
    "segments",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", TS, nullable=False),
)

segment_memberships = Table(
    "segment_memberships",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("segment", String(100), ForeignKey("segments.name"), nullable=False),
    Column("profile_id", String(40), nullable=False),
    Column("entered_at", TS, nullable=False),
    Column("exited_at", TS, nullable=True),
    Index("ix_segment_memberships_segment", "segment"),
)

exports = Table(
    "exports",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("segment", String(100), nullable=False),
    Column("destination", String(100), nullable=False),
    Column("location", Text, nullable=True),
    Column("actor", String(100), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("member_count", Integer, nullable=False),
)

export_members = Table(
    "export_members",
    metadata,
    Column("export_id", String(40), ForeignKey("exports.id"), primary_key=True),
    Column("profile_id", String(40), primary_key=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("at", String(40), nullable=False),  # ISO 8601 text: hashed exactly as stored
    Column("actor", String(200), nullable=False),
    Column("role", String(100), nullable=False),
    Column("purpose", String(100), nullable=False),
    Column("action", String(30), nullable=False),
    Column("resource", String(100), nullable=False),
    Column("fields", Text, nullable=False),
    Column("subjects", Text, nullable=False),
    Column("subject_count", Integer, nullable=False),
    Column("decision", String(10), nullable=False),
    Column("rule", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("signature", String(200), nullable=False),
    Column("public_key", String(100), nullable=False),
    Column("at", String(40), nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("position", String(500), nullable=False),
    Column("field", String(200), nullable=True),
    Column("reason", Text, nullable=False),
    Column("key_id", String(40), ForeignKey("subject_keys.id"), nullable=True),
    Column("payload_enc", LargeBinary, nullable=True),
    Column("received_at", TS, nullable=False),
    Column("status", String(20), nullable=False, server_default="open"),  # open | replayed | discarded
    Column("replayed_at", TS, nullable=True),
    UniqueConstraint("source", "position"),
)

connector_state = Table(
    "connector_state",
    metadata,
    Column("connector", String(100), primary_key=True),
    Column("stream", String(100), primary_key=True),
    Column("cursor", JSON, nullable=True),
    Column("updated_at", TS, nullable=False),
)

ingested_files = Table(
    "ingested_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("location", Text, nullable=False),
    Column("ingested_at", TS, nullable=False),
    UniqueConstraint("source", "digest"),
)

# -- identity control (manual rules, match evidence) ------------------------------------------------

identity_rules = Table(
    "identity_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),  # merge | split | never
    Column("record_a", String(40), nullable=False),
    Column("record_b", String(40), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS, nullable=True),
)

match_evidence = Table(
    "match_evidence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), nullable=False),
    Column("record_a", String(40), nullable=False),
    Column("record_b", String(40), nullable=False),
    Column("probability", Float, nullable=False),
    Column("match_weight", Float, nullable=False),
    Column("details", JSON, nullable=True),  # per compared field: level and weight (never values)
    Column("created_at", TS, nullable=False),
    Index("ix_match_evidence_record_a", "record_a"),
    Index("ix_match_evidence_record_b", "record_b"),
)

# -- data-subject requests and suppression ----------------------------------------------------------

dsr_requests = Table(
    "dsr_requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(20), nullable=False),  # access | erasure | rectification | restriction | objection
    Column("status", String(20), nullable=False),  # received | verified | in_progress | done | rejected
    Column("regime", String(10), nullable=False),  # GDPR | CCPA
    Column("profile_id", String(40), nullable=True),
    Column("received_at", TS, nullable=False),
    Column("due_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("detail", JSON, nullable=True),  # operational detail only, never identifier values
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(30), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("request_id", String(40), nullable=True),
    Column("created_at", TS, nullable=False),
    Index("ix_suppressions_kind_digest", "kind", "digest"),
)

destination_deletions = Table(
    "destination_deletions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("destination", String(100), nullable=False),
    Column("export_id", String(40), nullable=True),
    Column("profile_id", String(40), nullable=False),
    Column("request_id", String(40), nullable=True),
    Column("status", String(20), nullable=False),  # queued | sent | failed
    Column("created_at", TS, nullable=False),
)

# Audience syncs to destinations (``cdp/activation``): who each destination currently holds for a
# segment (the base of the next incremental add/remove sync), and one row per sync attempt.
destination_members = Table(
    "destination_members",
    metadata,
    Column("destination", String(100), primary_key=True),
    Column("segment", String(100), primary_key=True),
    Column("profile_id", String(40), primary_key=True),
    Column("synced_at", TS, nullable=False),
)

destination_syncs = Table(
    "destination_syncs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("destination", String(100), nullable=False),
    Column("segment", String(100), nullable=False),
    Column("purpose", String(50), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("status", String(20), nullable=False),  # delivered | failed
    Column("added", Integer, nullable=False),
    Column("removed", Integer, nullable=False),
    Column("excluded", Integer, nullable=False),  # members the policy or consent kept out
    Column("export_id", String(40), nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=False),
    Index("ix_destination_syncs_destination_segment", "destination", "segment"),
)

# An encrypted, columnar copy of ``events`` for analytics reads (SQLite only; see
# ``cdp/access/_event_blocks.py``). One row per range of event rowids; triggers made by
# migration 0003 delete a block as soon as an event in its range is inserted, changed or
# deleted, so a block only ever holds what ``events`` holds.
event_blocks = Table(
    "event_blocks",
    metadata,
    Column("lo", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("hi", BigInteger, nullable=False),  # first rowid after the range
    Column("row_count", Integer, nullable=False),
    Column("first_id", String(40), nullable=False),  # events.id at the first and last rowid, checked on
    Column("last_id", String(40), nullable=False),  # every read (a VACUUM may renumber rowids)
    Column("key_id", String(40), nullable=False),  # data key of the copy, in the key store
    Column("core", LargeBinary, nullable=False),  # nonce || AES-256-GCM(the columns: _event_block_format.py)
    Column("props", LargeBinary, nullable=True),  # the same for the non-empty properties
    Column("built_at", TS, nullable=False),
    # The insert trigger asks max(hi) for every new event: an index makes that one seek.
    Index("ix_event_blocks_hi", "hi"),
)

# Encrypted caches of values derived for analytics (``cdp/access/_analytic_cache.py``): one
# row per cache, its body AES-256-GCM under a data key of its own, dropped with that key on
# any erasure or retention deletion.
analytic_cache = Table(
    "analytic_cache",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("key_id", String(40), nullable=False),
    Column("body", LargeBinary, nullable=False),  # nonce || AES-256-GCM(Arrow IPC)
    Column("row_count", Integer, nullable=False),
    Column("built_at", TS, nullable=False),
)

# The profiles whose row in the golden cache (``analytic_cache`` ``golden_profiles``, see
# ``cdp/access/_profile_frame.py``) a change to records, links or a profile's status made
# out of date; filled by triggers made by migration 0005 (SQLite), emptied by the next read.
golden_dirty = Table(
    "golden_dirty",
    metadata,
    Column("profile_id", String(40), primary_key=True),
)
