"""Secrets kept in the database, encrypted at rest (AES-256-GCM).

Used for the staff's TOTP secrets: unlike a password, a TOTP secret must be
read back to check a code, so it cannot be hashed. Encrypted, a copy of the
database (a backup, a replica, an SQL injection) does not let anyone make
an advisor's codes without also holding the key, which lives in the
environment (`TOTP_ENCRYPTION_KEYS`), not in the database.

A sealed value reads `v1$<key id>$<base64 of nonce + ciphertext + tag>`.
Keys are strings of any length; each is stretched with HKDF-SHA256 into an
AES-256 key. The first key seals, every key listed unseals: rotation is "add
the new key first, run `manage.py totp_keys_rotate`, then drop the old
one" (docs/operations.md). Without `TOTP_ENCRYPTION_KEYS` the keys derive
from SECRET_KEY and its fallbacks, good for `make run`; `manage.py check
--deploy` warns about it, since rotating SECRET_KEY would then mean
rotating these too.
"""

import base64
import hashlib
import secrets
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

VERSION = "v1"
NONCE_BYTES = 12


class UnsealError(ValueError):
    """Not a sealed value, sealed with a key not configured, or altered."""


@lru_cache(maxsize=16)
def _aes_key(secret: str, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"portal {purpose}".encode()
    ).derive(secret.encode())


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"key id" + key).hexdigest()[:8]


def _keys(purpose: str) -> list[bytes]:
    """The AES keys for `purpose`, the sealing one first."""
    configured = list(getattr(settings, "TOTP_ENCRYPTION_KEYS", []) or [])
    secrets_ = configured or [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return [_aes_key(secret, purpose) for secret in secrets_ if secret]


def seal(plaintext: str, *, purpose: str) -> str:
    key = _keys(purpose)[0]
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), purpose.encode())
    return f"{VERSION}${_key_id(key)}${base64.b64encode(nonce + sealed).decode()}"


def unseal(value: str, *, purpose: str) -> str:
    try:
        version, key_id, payload = value.split("$")
        raw = base64.b64decode(payload, validate=True)
    except ValueError:
        raise UnsealError("not a sealed value") from None
    if version != VERSION:
        raise UnsealError(f"unknown version {version!r}")
    for key in _keys(purpose):
        if _key_id(key) == key_id:
            try:
                return (
                    AESGCM(key)
                    .decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode())
                    .decode()
                )
            except InvalidTag:
                raise UnsealError("altered, or sealed for another purpose") from None
    raise UnsealError(f"sealed with key {key_id}, which is not configured")


def sealed_with_current_key(value: str, *, purpose: str) -> bool:
    """Whether `value` is sealed with the key that seals now (rotation)."""
    parts = value.split("$")
    return len(parts) == 3 and parts[1] == _key_id(_keys(purpose)[0])
