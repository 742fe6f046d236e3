"""The destination contract: what a plugin that delivers audiences declares and implements.

Why this module exists: segments are activated in downstream tools (a CRM webhook, an ad
platform's hashed audience, files for a batch job). Each kind is a :class:`Destination`
class, registered through the ``cdp_destinations`` hook like the built-in ones; an
operator configures named instances of them in a destinations file. A destination never
reads customer data itself: the sync (``cdp.activation.sync``) reads the members through
the access layer as the destination's service account with the segment's purpose, so
the consent row filter and the policy's masking (hashes for advertising) have already
applied to what :meth:`Destination.deliver` receives.

Members are named to a destination by a *member key*, an HMAC of the profile id under a
system secret and the destination's name: stable across syncs (so a removal names whom
an earlier sync added), different for every destination (so two tools cannot join their
audiences on it), and never the internal profile id.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cdp._exceptions import CDPError, ConfigurationError
from cdp.connectors.base import ConfigField, check_config

__all__ = [
    "AudienceBatch",
    "ConfigField",
    "DeletionBatch",
    "Destination",
    "DestinationFailed",
    "member_key",
]


class DestinationFailed(CDPError):
    """A destination did not take a delivery (after retries where they make sense).

    ``retryable``: the same delivery may succeed later (the tool was down, rate limited);
    otherwise it refused what it was sent and an operator must look.
    """

    exit_code = 69  # EX_UNAVAILABLE
    http_status = 502

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class AudienceBatch:
    """Part of one sync: members who entered the audience (with the fields the policy lets this
    destination have, keyed by ``member_key``) and member keys of those who left it."""

    sync_id: str
    destination: str
    segment: str
    purpose: str
    sequence: int  # 0, 1, ... within the sync
    last: bool
    added: tuple[Mapping[str, Any], ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def idempotency_key(self) -> str:
        """The same for a re-delivery of this batch (a retry, or the next sync after a failure
        re-sends with a new sync id, so a receiver also dedups by member key)."""
        return f"{self.sync_id}-{self.sequence:05d}"


@dataclass(frozen=True)
class DeletionBatch:
    """Erased people a destination must delete (data-subject erasure requests)."""

    destination: str
    members: tuple[Mapping[str, str], ...] = field(default_factory=tuple)  # {"member_key", "request_id"}


class Destination:
    """Base class of destination plugins. Subclasses set the class attributes and implement
    :meth:`deliver` (and :meth:`delete` when ``supports_deletion``)."""

    name: ClassVar[str]  # the ``type`` an operator writes in the destinations file
    description: ClassVar[str] = ""
    config_fields: ClassVar[tuple[ConfigField, ...]] = ()
    # Profile fields read for each added member; the policy decides what comes back (and masked how).
    fields: ClassVar[tuple[str, ...]] = ()
    # Purposes it may deliver for (None: every purpose the destination service role is bound to).
    purposes: ClassVar[tuple[str, ...] | None] = None
    batch_size: ClassVar[int] = 1000
    supports_deletion: ClassVar[bool] = False

    def __init__(self, instance: str, config: Mapping[str, Any], *, keys_dir: Path, source: str = "") -> None:
        self.instance = instance
        self.keys_dir = keys_dir
        self._source = source
        self.config = check_config(self.config_fields, config, where=self._where, ignore=("type",))

    def _where(self, key: str) -> str:
        """How a configuration error starts: the file and line, then the key's path."""
        return f"{self._source}: destinations.{self.instance}.{key}: " if self._source else f"{self.instance}.{key}: "

    def config_error(self, key: str, reason: str) -> ConfigurationError:
        """A configuration error about ``key`` of this destination (for checks beyond the types)."""
        return ConfigurationError(self._where(key) + reason)

    def deliver(self, batch: AudienceBatch) -> None:
        """Deliver one batch; raise :class:`DestinationFailed` if the destination did not take it."""
        raise NotImplementedError

    def delete(self, batch: DeletionBatch) -> None:
        """Ask the destination to delete these people; raise :class:`DestinationFailed` if it did not."""
        raise NotImplementedError(f"destination type {self.name!r} does not take deletions")

    def location(self) -> str:
        """Where deliveries go, for the export record and the CLI (no secret in it)."""
        return self.name


def member_key(secret: bytes, destination: str, profile_id: str) -> str:
    """The name of a member to one destination (see the module docstring): 128 bits of
    HMAC-SHA256(secret, destination, profile id), hex."""
    message = destination.encode() + b"\x00" + profile_id.encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]
