from typing import Any

from portal.core.request_id import current_request_id

from .models import AuditEntry

# Data keys that would carry a secret or an identifier that must stay out of the log.
FORBIDDEN_WORDS = ("password", "token", "secret", "nir", "iban", "otp")
# Codes that are public reference data, not one-time secrets.
REFERENCE_CODES = {"postal_code", "cpam_code", "status_code", "act_code", "error_code"}


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
    leaked = {
        key
        for key in data
        if any(word in key.lower() for word in FORBIDDEN_WORDS)
        or (key.lower().endswith("code") and key.lower() not in REFERENCE_CODES)
    }
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
