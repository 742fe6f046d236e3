"""Every hook is documented with its exact signature, and default plugins implement only known hooks.

``docs/connectors.md`` is what plugin authors read: a hook that is missing
there, or documented with a signature that has drifted from
``cdp/hookspecs.py``, is a broken promise. The default plugins are checked the
way the plugin manager checks third-party ones (``check_pending``), plus a
check that no ``cdp_*`` function was left without ``@hookimpl`` (pluggy
silently ignores those).
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest

from cdp import hookspecs
from cdp.hookspecs import PluginContext, hookimpl
from cdp.plugins import DEFAULT_PLUGINS

DOC = Path(__file__).resolve().parent.parent / "docs" / "connectors.md"
HEADING = re.compile(r"^###\s+`?(cdp_\w+)(\(.*?)`?\s*$", re.MULTILINE)


def annotation_text(annotation: Any) -> str:
    # hookspecs.py uses postponed annotations, so these are the source strings.
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def signature_text(name: str, function: Callable[..., Any]) -> str:
    signature = inspect.signature(function)
    params = ", ".join(
        p.name if p.annotation is inspect.Parameter.empty else f"{p.name}: {annotation_text(p.annotation)}"
        for p in signature.parameters.values()
    )
    returns = (
        ""
        if signature.return_annotation is inspect.Signature.empty
        else f" -> {annotation_text(signature.return_annotation)}"
    )
    return f"{name}({params}){returns}"


def hook_specs() -> dict[str, Callable[..., Any]]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("cdp_") and hasattr(function, marker)
    }


def documented(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for match in HEADING.finditer(text):
        found.setdefault(match.group(1), []).append(match.group(1) + match.group(2).strip())
    return found


def section(text: str, name: str) -> str:
    start = re.search(rf"^###\s+`?{name}\(", text, re.MULTILINE)
    assert start is not None
    end = re.search(r"^#{1,3}\s", text[start.end() :], re.MULTILINE)
    return text[start.start() : start.end() + (end.start() if end else len(text))]


def test_there_are_hooks_to_check() -> None:
    assert {"cdp_connectors", "cdp_normalizers", "cdp_keyring"} <= set(hook_specs())


def test_the_signature_text_is_exact() -> None:
    def cdp_example(context: PluginContext) -> list[Any]:
        return []

    assert signature_text("cdp_example", cdp_example) == "cdp_example(context: PluginContext) -> list[Any]"


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_follows_the_rules(name: str) -> None:
    parameters = list(inspect.signature(hook_specs()[name]).parameters.values())
    assert [(p.name, annotation_text(p.annotation)) for p in parameters] == [("context", "PluginContext")]


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_is_documented_with_its_signature(name: str) -> None:
    headings = documented(DOC.read_text(encoding="utf-8"))
    expected = signature_text(name, hook_specs()[name])
    assert name in headings, f"docs/connectors.md has no `### {expected}` section"
    assert headings[name] == [expected], f"docs/connectors.md documents {headings[name]}, the hookspec is {expected}"


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_firstresult_hooks_say_so(name: str) -> None:
    options = getattr(hook_specs()[name], f"{hookspecs.PROJECT_NAME}_spec")
    if options.get("firstresult"):
        assert "firstresult" in section(DOC.read_text(encoding="utf-8"), name)


def test_no_documented_hook_is_stale() -> None:
    stale = sorted(set(documented(DOC.read_text(encoding="utf-8"))) - set(hook_specs()))
    assert stale == []


def test_a_drifted_signature_is_caught() -> None:
    text = DOC.read_text(encoding="utf-8").replace(
        "### cdp_connectors(context: PluginContext) -> list[Any]",
        "### cdp_connectors(context: PluginContext) -> list[type]",
    )
    assert documented(text)["cdp_connectors"] != [signature_text("cdp_connectors", hook_specs()["cdp_connectors"])]


def manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


@pytest.mark.parametrize("module_name", DEFAULT_PLUGINS)
def test_default_plugins_implement_only_known_hooks(module_name: str) -> None:
    module = importlib.import_module(module_name)
    pm = manager()
    pm.register(module, name=module_name)
    pm.check_pending()
    implemented = {name for name, _ in inspect.getmembers(module, inspect.isfunction) if name.startswith("cdp_")}
    unmarked = sorted(n for n in implemented if not hasattr(getattr(module, n), f"{hookspecs.PROJECT_NAME}_impl"))
    assert unmarked == [], f"{module_name}: cdp_* functions without @hookimpl are ignored by pluggy: {unmarked}"
    assert implemented <= set(hook_specs())
    assert implemented, f"{module_name} implements no hook"


def test_all_default_plugins_together() -> None:
    pm = manager()
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    pm.check_pending()


def test_an_unknown_hook_is_caught() -> None:
    module = types.ModuleType("misspelt_plugin")

    @hookimpl
    def cdp_connector(context: PluginContext) -> list[Any]:  # missing the final "s"
        return []

    module.cdp_connector = cdp_connector  # type: ignore[attr-defined]
    pm = manager()
    pm.register(module, name="misspelt_plugin")
    with pytest.raises(pluggy.PluginValidationError, match="cdp_connector"):
        pm.check_pending()
