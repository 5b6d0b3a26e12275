from typing import Any

from portal.core.request_id import current_request_id

from .models import AuditEntry

FORBIDDEN_KEYS = {"password", "token", "code", "nir", "iban", "secret"}


def record(
    *,
    action: str,
    actor: str,
    member=None,
    ip: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one audit entry. `data` must not carry secrets; keys that look like one are refused."""
    data = data or {}
    leaked = {key for key in data if any(word in key.lower() for word in FORBIDDEN_KEYS)}
    if leaked:
        raise ValueError(f"audit data must not contain secrets: {sorted(leaked)}")
    return AuditEntry.objects.create(
        action=action,
        actor=actor,
        member=member,
        ip=ip or None,
        request_id=current_request_id() or "",
        data=data,
    )
