"""Random sequences of changes followed by every per-person and bulk operation.

Why: the changes each have their own tests, but people reach states no single test builds (a
record under a shredded key moved to another profile, a rectification of someone whose keys
are gone, a refresh with no event left to see). Each of those crashed an operation until a run
of this kind found it. After every change, the 360 view (three roles), the access export, the
identity features and a data-subject request by email must work, and every few steps a segment
refresh, the exports and a resolution run; at the end the audit chain must verify. Seeds are
fixed; the ids (time-ordered) are not, so each run visits different people: a failure here is a
real bug, whichever run finds it.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import pytest
from test_golden_cache import _active, _changes
from test_segments_events_read import DSR

from cdp._exceptions import Conflict, NotFound
from cdp.access import AccessContext, CustomerStore
from cdp.access.context import identity_context

VIEWERS = [
    AccessContext("user:olga", "compliance_officer", "compliance"),
    AccessContext("user:mia", "marketer", "marketing_email"),
    AccessContext("user:ann", "analyst", "analytics"),
]


def _emails(store: CustomerStore) -> list[str]:
    return sorted({r["email"] for r in store.read_profiles(VIEWERS[0], ["email"]) if r.get("email")})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_operation_works_after_random_changes(loaded: CustomerStore, tmp_path: Path, seed: int) -> None:
    from cdp.consent.dsr import DataSubjectRequests
    from cdp.pipeline import DEMO_SEGMENTS_DIR, export, refresh_segments, resolve
    from cdp.segments.service import load_segment_file

    store = loaded
    rng = random.Random(seed)
    changes = _changes(store, tmp_path, rng)
    definitions = [load_segment_file(p) for p in sorted(DEMO_SEGMENTS_DIR.glob("*.yaml"))]
    requests = DataSubjectRequests(store, store.settings)
    for step in range(10):
        rng.choice(changes)(step)
        active = _active(store)
        for person in rng.sample(active, min(2, len(active))):
            for ctx in VIEWERS:
                with contextlib.suppress(NotFound):  # nothing this role may see of them for that purpose
                    store.profile_view(ctx, person)
            store.subject_export(DSR, person)
        store.identity_features(identity_context())
        if step % 4 == 3:
            refresh_segments(store, definitions)
            for definition in definitions:
                export(store, store.settings, definition)
            resolve(store, store.settings)
        emails = _emails(store)
        if emails:
            kind = rng.choice(["access", "access", "erasure", "rectification"])
            options: dict[str, Any] = {"corrections": {"city": "Elsewhere"}} if kind == "rectification" else {}
            with contextlib.suppress(Conflict):  # an email shared by profiles: it asks for another identifier
                requests.run(DSR, kind=kind, identifier=rng.choice(emails), **options)
    # every one of those accesses is in the audit log, whose chain still verifies
    verified = store.verify_audit(AccessContext("officer:ann", "compliance_officer", "compliance"))
    assert verified.ok, verified.reason
