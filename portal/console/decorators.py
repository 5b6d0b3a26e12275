from functools import wraps

from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect


def staff_required(permission=None):
    """Log-in (with TOTP) required; then `permission(staff)` must allow, else 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            staff = getattr(request, "staff", None)
            if staff is None:
                return redirect("console:login")
            if permission is not None and not permission(staff):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
