"""Records of processing (GDPR Art. 30): what is held, why, from where, shared with whom.

Built from the policies (classes, purposes, roles) and the live data
inventory (counts only; no values are read).
"""

from __future__ import annotations

from typing import Any

from cdp.access import AccessContext, CustomerStore
from cdp.model import CLEAR_FIELDS, IDENTITY_FIELDS
from cdp.policy import Policy

FIELD_COLUMNS = (*IDENTITY_FIELDS, *CLEAR_FIELDS)


def processing_record(store: CustomerStore, policy: Policy, ctx: AccessContext) -> dict[str, Any]:
    inventory = store.processing_inventory(ctx)
    held: dict[str, dict[str, Any]] = {}
    for source, counts in inventory["sources"].items():
        for name in FIELD_COLUMNS:
            if counts.get(name):
                cls = policy.field_classes.get(name, "unclassified")
                entry = held.setdefault(cls, {"fields": set(), "sources": set()})
                entry["fields"].add(name)
                entry["sources"].add(source)
    purposes = {
        name: {
            "description": p.description,
            "lawful_basis": "consent" if p.consent else "legitimate interest / legal obligation",
            "consent_purpose": p.consent,
            "opt_in_jurisdictions": sorted(p.opt_in_required),
            "roles": sorted(r.name for r in policy.roles.values() if name in r.purposes),
        }
        for name, p in policy.purposes.items()
    }
    return {
        "categories_of_personal_data": {
            cls: {"fields": sorted(v["fields"]), "sources": sorted(v["sources"])} for cls, v in sorted(held.items())
        },
        "purposes": purposes,
        "sources": {s: c["records"] for s, c in inventory["sources"].items()},
        "events_by_source": inventory["events"],
        "recipients": inventory["destinations"],
        "consent_decisions": inventory["consents"],
        "retention_days": dict(policy.retention),
        "security_measures": [
            "AES-256-GCM field encryption of direct identifiers under per-person data keys (envelope encryption)",
            "keyed blind indexes for lookups",
            "default-deny role and purpose policy with masking and consent row filters",
            "hash-chained audit log with signed checkpoints",
        ],
    }
