"""Policy engine: the only place that decides who may see what, for which purpose."""

from cdp.policy.engine import PolicyEngine, load_policy
from cdp.policy.model import Decision, Policy, Rule

__all__ = ["Decision", "Policy", "PolicyEngine", "Rule", "load_policy"]
