"""Who is asking, in which role, for what purpose.

Every call into the access layer carries an :class:`AccessContext`. There is
no default: a missing actor, role or purpose is denied (fail closed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AccessContext:
    actor: str
    role: str
    purpose: str
    request_id: str = field(default_factory=new_request_id)


# Service identities used by cdp's own pipeline steps.
def connector_context(connector: str, request_id: str | None = None) -> AccessContext:
    return AccessContext(f"connector:{connector}", "svc_connector", "ingestion", request_id or new_request_id())


def identity_context(request_id: str | None = None) -> AccessContext:
    return AccessContext("service:identity", "svc_identity", "identity_resolution", request_id or new_request_id())


def classifier_context(purpose: str = "profiling", request_id: str | None = None) -> AccessContext:
    return AccessContext("service:classifier", "svc_classifier", purpose, request_id or new_request_id())


def destination_context(destination: str, purpose: str, request_id: str | None = None) -> AccessContext:
    return AccessContext(f"destination:{destination}", "svc_destination", purpose, request_id or new_request_id())
