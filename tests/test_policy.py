"""The policy engine: default deny, purpose limitation, masking, explanations, validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cdp._exceptions import ConfigurationError
from cdp.policy import PolicyEngine, load_policy
from cdp.policy.masking import apply_treatment
from cdp.settings import Settings

POLICIES = Settings().policies_dir


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(load_policy(POLICIES))


def test_unknown_role_purpose_or_missing_context_is_denied(engine: PolicyEngine) -> None:
    assert not engine.decide(role="", purpose="analytics", action="read").allowed
    assert not engine.decide(role="analyst", purpose="", action="read").allowed
    assert not engine.decide(role="intern", purpose="analytics", action="read").allowed
    assert not engine.decide(role="analyst", purpose="curiosity", action="read").allowed


def test_purpose_limitation_and_actions(engine: PolicyEngine) -> None:
    assert engine.decide(role="marketer", purpose="marketing_email", action="read").allowed
    spoofed = engine.decide(role="marketer", purpose="compliance", action="read")
    assert not spoofed.allowed and "purpose limitation" in spoofed.reason
    assert not engine.decide(role="analyst", purpose="analytics", action="export").allowed
    assert not engine.decide(role="marketer", purpose="marketing_email", action="erase").allowed
    assert engine.decide(role="compliance_officer", purpose="dsr", action="erase").allowed


def test_field_rules_by_purpose_field_and_class(engine: PolicyEngine) -> None:
    decision = engine.decide(
        role="marketer",
        purpose="marketing_email",
        action="read",
        fields=["email", "phone", "street", "city", "nonsense"],
    )
    assert decision.fields["email"].treatment == "allow"
    assert decision.fields["phone"].treatment == "mask:partial"
    assert decision.fields["street"].treatment == "deny"
    assert decision.fields["city"].treatment == "allow"
    assert decision.fields["nonsense"].treatment == "deny" and "not classified" in decision.fields["nonsense"].origin
    ads = engine.decide(role="marketer", purpose="advertising", action="export", fields=["email"])
    assert ads.fields["email"].treatment == "mask:hash"
    assert ads.consent_purpose == "advertising"


def test_explain_names_the_deciding_rule(engine: PolicyEngine) -> None:
    text = engine.explain(role="marketer", purpose="marketing_email", field="email")
    assert text.startswith("ALLOW") and "roles.yaml:" in text and "purpose_fields.marketing_email.email" in text
    denied = engine.explain(role="analyst", purpose="analytics", field="street")
    assert denied.startswith("DENY") and "roles.analyst.fields.street" in denied


def test_masking_functions() -> None:
    assert apply_treatment("mask:partial", "email", "jane.doe@example.com") == "j***@example.com"
    assert apply_treatment("mask:hash", "email", " Jane@Example.com ") == apply_treatment(
        "mask:hash", "email", "jane@example.com"
    )
    assert apply_treatment("mask:generalise", "date_of_birth", "1990-06-01") in {"35-44", "25-34"}
    assert apply_treatment("mask:generalise", "postcode", "94103") == "941**"
    assert apply_treatment("mask:redact", "email", "a@b.co") == "[redacted]"
    partial_phone = apply_treatment("mask:partial", "phone", "+14155550101")
    assert isinstance(partial_phone, str) and partial_phone.endswith("0101") and "555" not in partial_phone


def _copy_policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


def test_invalid_policy_names_file_line_and_key(tmp_path: Path) -> None:
    target = _copy_policies(tmp_path)
    roles = target / "roles.yaml"
    text = roles.read_text(encoding="utf-8").replace("actions: [read, export]", "actions: [read, exfiltrate]", 1)
    roles.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        load_policy(target)
    line = next(i for i, content in enumerate(text.splitlines(), 1) if "exfiltrate" in content)
    assert (
        f"roles.yaml:{line}" in str(caught.value)
        and "roles.marketer.actions" in str(caught.value)
        and "exfiltrate" in str(caught.value)
    )


def test_unknown_key_and_bad_yaml_are_reported(tmp_path: Path) -> None:
    target = _copy_policies(tmp_path)
    purposes = target / "purposes.yaml"
    purposes.write_text(
        purposes.read_text(encoding="utf-8").replace("  ingestion:\n", "  ingestion:\n    colour: blue\n", 1),
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match=r"purposes.yaml:\d+: purposes.ingestion.colour: unknown key"):
        load_policy(target)
    purposes.write_text("purposes: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"purposes.yaml:\d+: not valid YAML"):
        load_policy(target)


def test_people_cannot_take_a_service_accounts_role(engine: PolicyEngine) -> None:
    assert engine.decide(role="svc_connector", purpose="ingestion", action="write", actor="connector:pos").allowed
    spoof = engine.decide(role="svc_connector", purpose="ingestion", action="write", actor="user:bob")
    assert not spoof.allowed and "may not act as role" in spoof.reason
    assert not engine.decide(
        role="svc_destination", purpose="advertising", action="export", actor="connector:pos"
    ).allowed
