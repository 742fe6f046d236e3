"""The customer store: the one door to customer data.

``open_store(settings)`` builds it: engine, policy engine, keyring (through
the ``cdp_keyring`` hook), blind indexer and audit signer. Its methods are
grouped by concern in private mixin modules; each runs inside
``StoreCore.access`` (policy decision + audit in the same transaction).
"""

from __future__ import annotations

from sqlalchemy import Engine

from cdp._exceptions import StorageError
from cdp.access import database
from cdp.access._activation import ActivationMixin
from cdp.access._audit_queries import AuditMixin
from cdp.access._consent import ConsentMixin
from cdp.access._core import StoreCore
from cdp.access._destinations import DestinationMixin
from cdp.access._events import EVENT_FIELDS, EventMixin
from cdp.access._identity import IdentityMixin, ResolutionStats
from cdp.access._identity_rules import IdentityRulesMixin
from cdp.access._ingest import IngestMixin
from cdp.access._matching import NEW_PROFILE, AttachStats, MatchingMixin
from cdp.access._profile_frame import ProfileFrameMixin
from cdp.access._profile_view import ProfileViewMixin
from cdp.access._profiles import PROFILE_FIELDS, ProfileMixin
from cdp.access._retention import RetentionMixin
from cdp.access._subjects import SubjectMixin
from cdp.access._tags_manual import ManualTagMixin
from cdp.crypto import BlindIndexer, CheckpointSigner, ensure_keyring, load_or_create_secret
from cdp.crypto.keystore import DataKeyStore
from cdp.hookspecs import PluginContext
from cdp.policy import PolicyEngine, load_policy
from cdp.settings import Settings

__all__ = [
    "EVENT_FIELDS",
    "NEW_PROFILE",
    "PROFILE_FIELDS",
    "AttachStats",
    "CustomerStore",
    "ResolutionStats",
    "open_store",
]


class CustomerStore(
    MatchingMixin,
    SubjectMixin,
    ConsentMixin,
    RetentionMixin,
    IdentityRulesMixin,
    ManualTagMixin,
    ProfileViewMixin,
    IngestMixin,
    IdentityMixin,
    ProfileFrameMixin,
    ProfileMixin,
    EventMixin,
    DestinationMixin,
    ActivationMixin,
    AuditMixin,
    StoreCore,
):
    """All reads and writes of customer data."""

    def close(self) -> None:
        self._ciphers.clear()
        self.keystore.close()
        self.engine.dispose()


def open_store(settings: Settings, *, migrate: bool = False, engine: Engine | None = None) -> CustomerStore:
    from cdp.plugins import get_plugin_manager

    engine = engine or database.create_db_engine(settings)
    if migrate:
        database.upgrade(engine)
    else:
        database.check_connection(engine)
        if not database.is_migrated(engine):
            raise StorageError("the database has no cdp schema yet: run `cdp db upgrade`")
        found = database.current_revision(engine)
        if found != database.HEAD_REVISION:
            raise StorageError(
                f"the database schema is at revision {found}, and this cdp needs {database.HEAD_REVISION}: "
                "run `cdp db upgrade` (back up the database first)"
            )
    policy = PolicyEngine(load_policy(settings.policies_dir))
    pm = get_plugin_manager()
    keyring = ensure_keyring(pm.hook.cdp_keyring(context=PluginContext(settings=settings)))
    # Once data exists, a missing secret is an incident, not something to regenerate
    # (a new blind-index key would silently stop every lookup from matching).
    fresh = not database.holds_data(engine)
    indexer = BlindIndexer(load_or_create_secret(settings.keys_dir, "blind-index", create=fresh))
    signer = CheckpointSigner(settings.keys_dir, create=fresh)
    return CustomerStore(settings, engine, policy, keyring, indexer, signer, DataKeyStore(settings.keys_dir))
