"""The audit chain's format: what each entry's hash covers, and how it is computed.

Each entry's hash covers its own fields and the previous entry's hash, so that
editing, deleting, inserting or reordering an entry breaks the chain from that
point on (`manage.py verify_audit`).

The format is frozen (version 1): every stored hash depends on it, and the
0003 migration that chained the entries written before it uses it too.
Changing anything here needs a new version number, with the verifier still
knowing the old one.

The serialization is canonical: the same entry read back from SQLite or from
PostgreSQL gives the same bytes, although PostgreSQL's `jsonb` reorders object
keys and rewrites numbers (`1e+16` comes back as `10000000000000000`):

- keys sorted, no whitespace, strings ASCII-escaped (`json.dumps`);
- numbers written by their exact decimal value in plain notation, so that
  `2`, `2.0` and `2e0` are one number, as they are to `jsonb`;
- the timestamp in UTC, ISO 8601 with microseconds (`2026-11-26T02:57:00.000000Z`);
- the IP address as stored (empty when none), the member as its id or `null`.
"""

import hashlib
import hmac
import json
import math
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

VERSION = 1
# The `prev_hash` of the first entry.
GENESIS = "0" * 64


def key_id(key: str) -> str:
    """A short public name of the chain key (empty without a key); never reveals the key."""
    if not key:
        return ""
    return hmac.new(key.encode(), b"portal.audit.chain key id", hashlib.sha256).hexdigest()[:16]


def entry_fields(
    *,
    seq: int,
    created_at: datetime,
    action: str,
    actor: str,
    outcome: str,
    member_id: int | None,
    ip: str | None,
    request_id: str,
    data: Any,
    prev_hash: str,
    key_id: str,
) -> dict[str, Any]:
    """The fields an entry's hash covers, in their canonical types."""
    return {
        "v": VERSION,
        "seq": seq,
        "created_at": utc_timestamp(created_at),
        "action": action,
        "actor": actor,
        "outcome": outcome,
        "member_id": member_id,
        "ip": ip or "",
        "request_id": request_id,
        "data": data,
        "prev_hash": prev_hash,
        "key_id": key_id,
    }


def entry_hash(fields: dict[str, Any], key: str = "") -> str:
    """SHA-256 of the canonical fields; HMAC-SHA256 when the chain has a key."""
    body = canonical(fields)
    if key:
        return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return hashlib.sha256(body).hexdigest()


def utc_timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value: Any) -> bytes:
    return _encode(value).encode("ascii")


def _encode(value: Any) -> str:
    # bool before int: True is an int to Python.
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("audit data keys must be strings")
        items = (f"{json.dumps(key)}:{_encode(value[key])}" for key in sorted(value))
        return "{" + ",".join(items) + "}"
    raise TypeError(f"audit data cannot hold a {type(value).__name__}")


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError("audit data numbers must be finite")
    if value == 0:  # -0.0 is 0 to jsonb
        return "0"
    # repr() is the shortest text that reads back as the same float, which is
    # what json.dumps writes and jsonb keeps exactly.
    return format(Decimal(repr(value)).normalize(), "f")
