from portal.staff import perms


def console(request):
    """What the console's navigation offers, decided by the named permissions."""
    staff = getattr(request, "staff", None)
    if staff is None:
        return {}
    return {"staff_can_view_planning": perms.can_view_planning(staff)}
