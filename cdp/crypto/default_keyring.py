"""The built-in ``cdp_keyring`` plugin: key files in the configured keys directory.

Why a plugin: cdp's own features are default plugins registered through the
same hooks as third-party ones. This one answers last (``trylast``), so any
installed KMS plugin (Vault, a cloud KMS) that returns a keyring wins, and
without one cdp still runs with the embedded :class:`FileKeyring`.
"""

from __future__ import annotations

from cdp.crypto.keyring import FileKeyring, Keyring
from cdp.hookspecs import PluginContext, hookimpl


@hookimpl(trylast=True)
def cdp_keyring(context: PluginContext) -> Keyring:
    """Return a :class:`FileKeyring` over ``context.settings.keys_dir``."""
    return FileKeyring(context.settings.keys_dir)
