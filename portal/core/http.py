import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the last hop added by a trusted proxy.

    X-Forwarded-For is only believed when the direct peer is one of
    TRUSTED_PROXIES; otherwise anybody could pick the address their attempts
    are counted against.
    """
    remote = request.META.get("REMOTE_ADDR", "") or "0.0.0.0"  # noqa: S104 (an unknown peer, not a bind address)
    if remote in settings.TRUSTED_PROXIES:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            if hop not in settings.TRUSTED_PROXIES:
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    break
    return remote
