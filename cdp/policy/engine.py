"""The policy engine: default deny, purpose limitation, field rules, explanations.

It answers one question, "may this role do this action for this purpose, and
how does each field reach it?", from ``policies/*.yaml``. It is consulted by
the access layer for every read and write and by ``cdp policy explain``;
nothing else makes access decisions.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

from cdp._exceptions import AccessDenied, ConfigurationError, PurposeRequired
from cdp.policy.loader import LocatedDocument, check_keys, load_yaml, require_list, require_mapping
from cdp.policy.model import ACTIONS, DEFAULT_DENY, TREATMENTS, Decision, Policy, Purpose, Role, Rule


def _origin(doc: LocatedDocument, path: tuple[str, ...]) -> str:
    return f"{doc.file.name}:{doc.line(*path)} {'.'.join(path)}"


def _field_rules(doc: LocatedDocument, raw: object, path: tuple[str, ...], known: set[str]) -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    for name, treatment in require_mapping(doc, raw, path).items():
        if name not in known:
            raise doc.error((*path, name), f"unknown field or class {name!r}")
        if treatment not in TREATMENTS:
            raise doc.error((*path, name), f"unknown treatment {treatment!r} (expected one of {sorted(TREATMENTS)})")
        rules[name] = Rule(str(treatment), _origin(doc, (*path, name)))
    return rules


def _load_fields(doc: LocatedDocument) -> tuple[frozenset[str], dict[str, str], dict[str, str]]:
    data = require_mapping(doc, doc.data, ())
    known = {"classes", "fields", "columns", "event_properties", "retention", "sensitive_keys", "allow_sensitive"}
    check_keys(doc, data, (), known)
    classes = frozenset(str(c) for c in require_list(doc, data.get("classes"), ("classes",)))
    mappings: list[dict[str, str]] = []
    for section in ("fields", "columns", "event_properties"):
        out: dict[str, str] = {}
        for name, cls in require_mapping(doc, data.get(section, {}), (section,)).items():
            if cls not in classes:
                raise doc.error((section, name), f"unknown class {cls!r} (expected one of {sorted(classes)})")
            out[name] = str(cls)
        mappings.append(out)
    return classes, mappings[0], {**mappings[1], **{f"events.properties.{k}": v for k, v in mappings[2].items()}}


def _load_purposes(doc: LocatedDocument) -> tuple[dict[str, Purpose], dict[str, frozenset[str]]]:
    data = require_mapping(doc, doc.data, ())
    check_keys(doc, data, (), {"purposes", "jurisdictions"})
    jurisdictions = {
        name: frozenset(str(c).upper() for c in require_list(doc, codes, ("jurisdictions", name)))
        for name, codes in require_mapping(doc, data.get("jurisdictions", {}), ("jurisdictions",)).items()
    }
    purposes: dict[str, Purpose] = {}
    for name, raw in require_mapping(doc, data.get("purposes"), ("purposes",)).items():
        path = ("purposes", name)
        body = require_mapping(doc, raw, path)
        check_keys(doc, body, path, {"description", "consent", "opt_in_required"})
        opt_in = frozenset(
            str(j) for j in require_list(doc, body.get("opt_in_required", []), (*path, "opt_in_required"))
        )
        for j in opt_in:
            if j not in jurisdictions:
                raise doc.error((*path, "opt_in_required"), f"unknown jurisdiction {j!r}")
        consent = body.get("consent")
        purposes[name] = Purpose(
            name=name,
            description=str(body.get("description", "")),
            consent=str(consent) if consent else None,
            opt_in_required=opt_in,
            origin=_origin(doc, path),
        )
    return purposes, jurisdictions


def _load_roles(doc: LocatedDocument, purposes: dict[str, Purpose], known_fields: set[str]) -> dict[str, Role]:
    data = require_mapping(doc, doc.data, ())
    check_keys(doc, data, (), {"roles"})
    roles: dict[str, Role] = {}
    for name, raw in require_mapping(doc, data.get("roles"), ("roles",)).items():
        path = ("roles", name)
        body = require_mapping(doc, raw, path)
        check_keys(doc, body, path, {"description", "actions", "purposes", "fields", "purpose_fields", "actors"})
        actions = frozenset(str(a) for a in require_list(doc, body.get("actions", []), (*path, "actions")))
        for action in actions - ACTIONS:
            raise doc.error((*path, "actions"), f"unknown action {action!r} (expected one of {sorted(ACTIONS)})")
        role_purposes = frozenset(str(p) for p in require_list(doc, body.get("purposes", []), (*path, "purposes")))
        for purpose in role_purposes - purposes.keys():
            raise doc.error((*path, "purposes"), f"unknown purpose {purpose!r}")
        purpose_fields: dict[str, dict[str, Rule]] = {}
        for purpose, rules in require_mapping(doc, body.get("purpose_fields", {}), (*path, "purpose_fields")).items():
            if purpose not in role_purposes:
                raise doc.error((*path, "purpose_fields", purpose), f"purpose {purpose!r} is not granted to this role")
            purpose_fields[purpose] = _field_rules(doc, rules, (*path, "purpose_fields", purpose), known_fields)
        roles[name] = Role(
            name=name,
            description=str(body.get("description", "")),
            actions=actions,
            purposes=role_purposes,
            fields=_field_rules(doc, body.get("fields", {}), (*path, "fields"), known_fields),
            purpose_fields=purpose_fields,
            origin=_origin(doc, path),
            actors=tuple(str(a) for a in require_list(doc, body.get("actors", []), (*path, "actors"))),
        )
    return roles


def load_policy(policies_dir: Path) -> Policy:
    """Load and validate ``fields.yaml``, ``purposes.yaml`` and ``roles.yaml``."""
    if not policies_dir.is_dir():
        raise ConfigurationError(f"{policies_dir}: policies directory not found")
    fields_doc = load_yaml(policies_dir / "fields.yaml")
    classes, field_classes, column_classes = _load_fields(fields_doc)
    purposes, jurisdictions = _load_purposes(load_yaml(policies_dir / "purposes.yaml"))
    known = set(field_classes) | set(classes)
    roles = _load_roles(load_yaml(policies_dir / "roles.yaml"), purposes, known)
    retention: dict[str, int] = {}
    raw_retention = fields_doc.data.get("retention", {})
    for key, days in require_mapping(fields_doc, raw_retention, ("retention",)).items():
        if not isinstance(days, int) or days <= 0:
            raise fields_doc.error(("retention", key), "retention must be a positive number of days")
        retention[key] = days
    sensitive = frozenset(
        str(k).lower() for k in require_list(fields_doc, fields_doc.data.get("sensitive_keys", []), ("sensitive_keys",))
    )
    allow_sensitive = fields_doc.data.get("allow_sensitive", False)
    if not isinstance(allow_sensitive, bool):
        raise fields_doc.error(("allow_sensitive",), "must be true or false")
    return Policy(
        sensitive_keys=frozenset() if allow_sensitive else sensitive,
        roles=roles,
        purposes=purposes,
        classes=classes,
        field_classes=field_classes,
        column_classes=column_classes,
        jurisdictions=jurisdictions,
        retention=retention,
    )


class PolicyEngine:
    """Default-deny decisions over a loaded :class:`Policy`."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def field_rule(self, role: Role, purpose: str, field: str) -> Rule:
        """The rule for one field: purpose-specific field, field, class, else default deny."""
        by_purpose = role.purpose_fields.get(purpose, {})
        if field in by_purpose:
            return by_purpose[field]
        if field in role.fields:
            return role.fields[field]
        cls = self.policy.field_classes.get(field)
        if cls is None:
            return Rule("deny", f"{DEFAULT_DENY}: field {field!r} is not classified in fields.yaml")
        if cls in by_purpose:
            return by_purpose[cls]
        if cls in role.fields:
            return role.fields[cls]
        return Rule("deny", f"{DEFAULT_DENY}: role {role.name!r} has no rule for class {cls!r}")

    def decide(
        self, *, role: str, purpose: str, action: str, fields: Iterable[str] = (), actor: str | None = None
    ) -> Decision:
        """Decide an access. Never raises: a denial is a Decision with ``allowed=False``.

        ``actor`` is checked against the role's ``actors`` patterns, so a person cannot take a
        service account's role (each connector and destination acts as its own actor)."""
        if not role or not purpose:
            missing = "role" if not role else "purpose"
            return Decision(False, DEFAULT_DENY, f"no {missing} declared: every access must declare one")
        role_def = self.policy.roles.get(role)
        if role_def is None:
            return Decision(False, DEFAULT_DENY, f"unknown role {role!r}")
        purpose_def = self.policy.purposes.get(purpose)
        if purpose_def is None:
            return Decision(False, DEFAULT_DENY, f"unknown purpose {purpose!r}")
        if actor is not None and role_def.actors and not any(fnmatch.fnmatchcase(actor, p) for p in role_def.actors):
            return Decision(
                False,
                role_def.origin,
                f"actor {actor!r} may not act as role {role!r} (bound to {list(role_def.actors)})",
            )
        if action not in role_def.actions:
            return Decision(
                False, role_def.origin, f"role {role!r} may not {action!r} (actions: {sorted(role_def.actions)})"
            )
        if purpose not in role_def.purposes:
            return Decision(
                False, role_def.origin, f"role {role!r} is not bound to purpose {purpose!r} (purpose limitation)"
            )
        rules = {name: self.field_rule(role_def, purpose, name) for name in fields}
        return Decision(
            True,
            role_def.origin,
            f"role {role!r} may {action} for {purpose!r}",
            fields=rules,
            consent_purpose=purpose_def.consent,
            opt_in_jurisdictions=purpose_def.opt_in_required,
        )

    def require(self, *, role: str, purpose: str, action: str, fields: Iterable[str] = ()) -> Decision:
        decision = self.decide(role=role, purpose=purpose, action=action, fields=fields)
        if not decision.allowed:
            error = PurposeRequired if decision.rule == DEFAULT_DENY and "declared" in decision.reason else AccessDenied
            raise error(f"access denied: {decision.reason}", rule=decision.rule)
        return decision

    def explain(self, *, role: str, purpose: str, field: str, action: str = "read") -> str:
        """One paragraph saying which rule decided, for ``cdp policy explain``."""
        decision = self.decide(role=role, purpose=purpose, action=action, fields=[field])
        if not decision.allowed:
            return f"DENY {action} by {role} for {purpose}: {decision.reason} [{decision.rule}]"
        rule = decision.fields[field]
        cls = self.policy.field_classes.get(field, "unclassified")
        consent = (
            f"; rows limited to people who have not refused {decision.consent_purpose!r}"
            if decision.consent_purpose
            else ""
        )
        head = f"{rule.treatment.upper()} field {field!r} ({cls}) for {role} / {purpose}"
        return f"{head}: decided by {rule.origin}{consent}"
