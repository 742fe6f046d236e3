"""The policy model: roles, purposes, field classes, decisions.

Plain frozen dataclasses so a loaded policy cannot be changed by the code that
consults it. Every rule carries where it came from (file and line), so a
decision can always say which rule decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACTIONS = frozenset({"read", "write", "export", "erase", "manage", "audit"})
TREATMENTS = frozenset({"allow", "deny", "mask:redact", "mask:partial", "mask:hash", "mask:generalise"})
DEFAULT_DENY = "default-deny"


@dataclass(frozen=True)
class Rule:
    """A treatment and the place in the policy files that set it."""

    treatment: str
    origin: str  # e.g. "policies/roles.yaml:27 roles.marketer.fields.email"

    @property
    def allowed(self) -> bool:
        return self.treatment != "deny"

    @property
    def masked(self) -> bool:
        return self.treatment.startswith("mask:")


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    actions: frozenset[str]
    purposes: frozenset[str]
    fields: dict[str, Rule]
    purpose_fields: dict[str, dict[str, Rule]]
    origin: str
    actors: tuple[str, ...] = ()  # fnmatch patterns of actors that may take this role (empty: any)


@dataclass(frozen=True)
class Purpose:
    name: str
    description: str
    consent: str | None
    opt_in_required: frozenset[str]  # jurisdiction names where silence means no
    origin: str


@dataclass(frozen=True)
class Policy:
    roles: dict[str, Role]
    purposes: dict[str, Purpose]
    classes: frozenset[str]
    field_classes: dict[str, str]
    column_classes: dict[str, str]
    jurisdictions: dict[str, frozenset[str]]  # jurisdiction -> ISO country codes
    retention: dict[str, int] = field(default_factory=dict)  # class or table -> days
    sensitive_keys: frozenset[str] = frozenset()  # payload keys removed before storage

    def jurisdiction_of(self, country: str | None, state: str | None = None) -> str | None:
        """The jurisdiction whose consent rules apply; a sub-national one (``US-CA``) wins."""
        if not country:
            return None
        code = country.upper()
        if state:
            local = f"{code}-{state.upper()}"
            for name, members in self.jurisdictions.items():
                if local in members:
                    return name
        for name, countries in self.jurisdictions.items():
            if code in countries:
                return name
        return None


@dataclass(frozen=True)
class Decision:
    """The answer to one access request."""

    allowed: bool
    rule: str
    reason: str
    fields: dict[str, Rule] = field(default_factory=dict)
    consent_purpose: str | None = None
    opt_in_jurisdictions: frozenset[str] = frozenset()
