"""Secrets kept in the database or the shared cache, encrypted (AES-256-GCM).

Used for the staff's TOTP secrets: unlike a password, a TOTP secret must be
read back to check a code, so it cannot be hashed. Encrypted, a copy of the
database (a backup, a replica, an SQL injection) does not let anyone make
an advisor's codes without also holding the key, which lives in the
environment (`TOTP_ENCRYPTION_KEYS`), not in the database.

The first page of Mes paiements kept in the shared cache (Redis) is sealed
too (with SECRET_KEY): the cache then holds neither health data in clear
nor HTML that someone able to write to Redis could have the portal serve.

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
from collections.abc import Sequence
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


def secret_keys() -> list[str]:
    """SECRET_KEY, then its fallbacks: keys for values that may simply be lost
    on rotation (a cached page), or the default of TOTP_ENCRYPTION_KEYS."""
    return [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]


def _keys(purpose: str, secrets_: Sequence[str] | None = None) -> list[bytes]:
    """The AES keys for `purpose`, the sealing one first: from `secrets_`, or
    by default from TOTP_ENCRYPTION_KEYS (else SECRET_KEY and its fallbacks)."""
    if secrets_ is None:
        secrets_ = list(getattr(settings, "TOTP_ENCRYPTION_KEYS", []) or []) or secret_keys()
    return [_aes_key(secret, purpose) for secret in secrets_ if secret]


def seal_bytes(
    data: bytes, *, purpose: str, keys: Sequence[str] | None = None, bound_to: str = ""
) -> str:
    """`bound_to`: what the value is for (a cache key…): unsealing needs the same."""
    key = _keys(purpose, keys)[0]
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, data, _aad(purpose, bound_to))
    return f"{VERSION}${_key_id(key)}${base64.b64encode(nonce + sealed).decode()}"


def unseal_bytes(
    value: str, *, purpose: str, keys: Sequence[str] | None = None, bound_to: str = ""
) -> bytes:
    try:
        version, key_id, payload = value.split("$")
        raw = base64.b64decode(payload, validate=True)
    except ValueError:
        raise UnsealError("not a sealed value") from None
    if version != VERSION:
        raise UnsealError(f"unknown version {version!r}")
    for key in _keys(purpose, keys):
        if _key_id(key) == key_id:
            try:
                return AESGCM(key).decrypt(
                    raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(purpose, bound_to)
                )
            except InvalidTag:
                raise UnsealError("altered, or sealed for another purpose") from None
    raise UnsealError(f"sealed with key {key_id}, which is not configured")


def _aad(purpose: str, bound_to: str) -> bytes:
    return purpose.encode() + (b"\0" + bound_to.encode() if bound_to else b"")


def seal(plaintext: str, *, purpose: str, keys: Sequence[str] | None = None) -> str:
    return seal_bytes(plaintext.encode(), purpose=purpose, keys=keys)


def unseal(value: str, *, purpose: str, keys: Sequence[str] | None = None) -> str:
    return unseal_bytes(value, purpose=purpose, keys=keys).decode()


def sealed_with_current_key(value: str, *, purpose: str) -> bool:
    """Whether `value` is sealed with the key that seals now (rotation)."""
    parts = value.split("$")
    return len(parts) == 3 and parts[1] == _key_id(_keys(purpose)[0])
