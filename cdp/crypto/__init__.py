"""cdp.crypto: the cryptographic primitives of cdp's privacy core.

Why one package: every secret-handling decision (algorithms, nonce and AAD
formats, key files and their permissions) is made here, once, and the rest
of cdp calls these functions instead of touching ``cryptography`` itself.

- :mod:`~cdp.crypto.keyring`: KEKs outside the database (:class:`Keyring`
  protocol, the embedded :class:`FileKeyring`) and system secrets;
- :mod:`~cdp.crypto.envelope`: per-person data keys, wrapping and rotation;
- :mod:`~cdp.crypto.fields`: AES-256-GCM field tokens bound to record, field, key;
- :mod:`~cdp.crypto.blind_index`: keyed HMAC indexes for equality lookups;
- :mod:`~cdp.crypto.signing`: Ed25519 signatures of audit checkpoints;
- :mod:`~cdp.crypto.default_keyring`: the built-in ``cdp_keyring`` plugin
  (register the module with the plugin manager; not re-exported here).
"""

from cdp.crypto.blind_index import BlindIndexer
from cdp.crypto.envelope import DATA_KEY_SIZE, data_key_aad, encode_aad, new_data_key, rewrap
from cdp.crypto.fields import FieldCipher, token_nonce
from cdp.crypto.keyring import FileKeyring, Keyring, WrappedKey, ensure_keyring, load_or_create_secret
from cdp.crypto.signing import CheckpointSigner, verify_signature

__all__ = [
    "DATA_KEY_SIZE",
    "BlindIndexer",
    "CheckpointSigner",
    "FieldCipher",
    "FileKeyring",
    "Keyring",
    "WrappedKey",
    "data_key_aad",
    "encode_aad",
    "ensure_keyring",
    "load_or_create_secret",
    "new_data_key",
    "rewrap",
    "token_nonce",
    "verify_signature",
]
