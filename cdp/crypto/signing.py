"""Ed25519 signatures for audit-log checkpoints.

Why this module exists: the audit log is a hash chain, and a chain alone only
proves internal consistency; whoever can rewrite the database can rewrite the
whole chain. Every so many entries the audit module signs a checkpoint (the
chain head) with a private key kept in the keys directory, outside the
database. Anyone holding the exported public key can then verify that the
log up to a checkpoint was not rewritten, without being able to sign.

The private key is the 32-byte Ed25519 seed, stored like every other system
secret by :func:`~cdp.crypto.keyring.load_or_create_secret` (base64, mode
0600, created on first use).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cdp.crypto.keyring import load_or_create_secret

__all__ = ["SIGNATURE_SIZE", "CheckpointSigner", "verify_signature"]

SIGNATURE_SIZE = 64
_PUBLIC_KEY_SIZE = 32


class CheckpointSigner:
    """Signs audit checkpoints with the Ed25519 key ``keys_dir/<name>.key``.

    ``create=False`` raises KeyUnavailable when the key file is missing,
    rather than generating a new key that old checkpoints would not match.
    """

    __slots__ = ("_private", "_public_raw")

    def __init__(self, keys_dir: Path, *, name: str = "audit-signing", create: bool = True) -> None:
        seed = load_or_create_secret(keys_dir, name, 32, create=create)
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self._public_raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def __repr__(self) -> str:
        return f"CheckpointSigner(public_key={self.public_key_hex()!r})"

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def public_key_raw(self) -> bytes:
        """The 32-byte raw public key."""
        return self._public_raw

    def public_key_hex(self) -> str:
        """The raw public key as 64 hex characters (what :func:`verify_signature` takes)."""
        return self._public_raw.hex()

    def public_key_pem(self) -> str:
        """The public key as a SubjectPublicKeyInfo PEM, for tools such as ``openssl pkeyutl``."""
        pem = self._private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return pem.decode("ascii")


def verify_signature(public_key_hex: str, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key_hex``.

    Anything that does not verify returns False, never raises: a wrong
    signature, a changed message, and also a malformed public key (not 64 hex
    characters), since keys are often read from the same possibly tampered
    checkpoint file. The caller turns False into
    :class:`~cdp._exceptions.IntegrityViolation`.
    """
    try:
        raw = bytes.fromhex(public_key_hex)
    except (ValueError, TypeError):
        return False
    if len(raw) != _PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
    except InvalidSignature:
        return False
    return True
