"""Property: no result ever contains a field value the policy denies, masks are applied,
and consent decides who appears (hypothesis, 1,000 examples)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixtures import write_fixture_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp._exceptions import AccessDenied
from cdp.access import AccessContext, CustomerStore, open_store
from cdp.access.store import PROFILE_FIELDS
from cdp.pipeline import SourceSpec, ingest, resolve
from cdp.settings import Settings

OFFICER = AccessContext("officer", "compliance_officer", "compliance")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CustomerStore, dict[str, dict[str, object]]]]:
    base = tmp_path_factory.mktemp("property")
    store = open_store(Settings(data_dir=base / "data", keys_dir=base / "keys"), migrate=True)
    for name, path in write_fixture_files(base / "src").items():
        ingest(store, store.settings, SourceSpec(name, {"path": str(path)}))
    resolve(store, store.settings)
    plain = {r["profile_id"]: r for r in store.read_profiles(OFFICER, PROFILE_FIELDS)}
    yield store, plain
    store.close()


ROLES = [
    "data_engineer",
    "marketer",
    "analyst",
    "compliance_officer",
    "svc_connector",
    "svc_identity",
    "svc_classifier",
    "svc_destination",
    "auditor_readonly",
    "intern",
    "",
]
PURPOSES = [
    "ingestion",
    "identity_resolution",
    "operations",
    "analytics",
    "personalisation",
    "profiling",
    "marketing_email",
    "marketing_sms",
    "advertising",
    "compliance",
    "dsr",
    "curiosity",
    "",
]
CONSENT_PURPOSES = ["analytics", "personalisation", "profiling", "marketing_email", "marketing_sms", "advertising"]


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    role=st.sampled_from(ROLES),
    purpose=st.sampled_from(PURPOSES),
    fields=st.lists(st.sampled_from([*PROFILE_FIELDS, "ssn", "religion"]), min_size=1, max_size=8, unique=True),
    consent_target=st.integers(min_value=0, max_value=4),
    consent_purpose=st.sampled_from(CONSENT_PURPOSES),
    consent_status=st.sampled_from(["granted", "denied", "withdrawn"]),
)
def test_no_result_contains_a_value_the_policy_denies(
    world: tuple[CustomerStore, dict[str, dict[str, object]]],
    role: str,
    purpose: str,
    fields: list[str],
    consent_target: int,
    consent_purpose: str,
    consent_status: str,
) -> None:
    store, plain = world
    person = sorted(plain)[consent_target]
    store.record_consent(OFFICER, person, purpose=consent_purpose, status=consent_status)
    actor = {
        "svc_connector": "connector:pos",
        "svc_identity": "service:identity",
        "svc_classifier": "service:classifier",
        "svc_destination": "destination:file",
    }.get(role, "user:prop")
    decision = store.policy.decide(role=role, purpose=purpose, action="read", fields=fields, actor=actor)
    context = AccessContext(actor, role, purpose)
    if not decision.allowed:
        with pytest.raises(AccessDenied):
            store.read_profiles(context, fields)
        return
    rows = store.read_profiles(context, fields)
    for row in rows:
        truth = plain[str(row["profile_id"])]
        for name in fields:
            rule = decision.fields[name]
            if not rule.allowed:
                assert name not in row, f"{role}/{purpose} received denied field {name}"
            elif rule.treatment == "allow":
                assert row[name] == truth.get(name)
            elif truth.get(name) not in (None, ""):
                assert row[name] != truth[name], f"{role}/{purpose} received {name} unmasked"
        assert set(row) <= {"profile_id", *fields}
    returned = {r["profile_id"] for r in rows}
    if decision.consent_purpose == consent_purpose:
        if consent_status == "granted":
            assert person in returned
        else:
            assert person not in returned
