"""Every extension point of cdp, in one place.

cdp is built the datasette way: the host calls hooks, and its own built-in
features (connectors, normalisers, classifiers, destinations, the file
keyring) are default plugins registered through these same hooks. Third
parties add theirs through the ``cdp`` entry-point group.

Rules for hooks:
- every hook name starts with ``cdp_``;
- every hook takes exactly one keyword argument, ``context``, a
  :class:`PluginContext`;
- hooks are called by keyword (``pm.hook.cdp_connectors(context=ctx)``).

Each hook is documented in ``docs/connectors.md`` (a test checks that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from cdp.settings import Settings

PROJECT_NAME = "cdp"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass(frozen=True)
class PluginContext:
    """What every hook receives: the running settings."""

    settings: Settings


@hookspec
def cdp_connectors(context: PluginContext) -> list[Any]:  # type: ignore[empty-body]
    """Return connector classes (subclasses of ``cdp.connectors.Connector``)."""


@hookspec
def cdp_normalizers(context: PluginContext) -> dict[str, Any]:  # type: ignore[empty-body]
    """Return ``{field_type: callable}`` normalisers; later plugins override earlier ones."""


@hookspec(firstresult=True)
def cdp_keyring(context: PluginContext) -> Any:
    """Return the key-encryption-key keyring (for example an external KMS client).

    The first plugin returning something other than ``None`` wins; the
    built-in file keyring answers last.
    """


@hookspec
def cdp_classifiers(context: PluginContext) -> list[Any]:  # type: ignore[empty-body]
    """Return classifiers that compute tags or attributes for profiles."""


@hookspec
def cdp_destinations(context: PluginContext) -> list[Any]:  # type: ignore[empty-body]
    """Return export destination classes (files, webhooks, ad audiences)."""
