"""Building the plugin manager: built-in default plugins, then installed ones.

Built at call time, never at import time (``get_plugin_manager()`` returns a
fresh, cached-per-process manager). Built-in features are ordinary plugins
listed in ``DEFAULT_PLUGINS``; third-party plugins register through the
``cdp`` entry-point group in their own ``pyproject.toml``.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

import pluggy

from cdp import hookspecs

DEFAULT_PLUGINS: tuple[str, ...] = (
    "cdp.crypto.default_keyring",
    "cdp.identity.default_normalizers",
    "cdp.connectors.builtin",
    "cdp.segments.classify.builtin",
    "cdp.activation.builtin",
)


def build_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        pm.register(module, name=name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    pm.check_pending()
    return pm


@lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built on first use)."""
    return build_plugin_manager()
