"""The supervisor's staff management: list, deactivate or reactivate, new enrolment link."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal.core.http import client_ip
from portal.staff import perms
from portal.staff import services as staff_services
from portal.staff.models import Staff

from .decorators import staff_required


@staff_required(perms.can_manage_staff)
def staff_list(request):
    team = Staff.objects.filter(cpam=request.staff.cpam).order_by("role", "email")
    return render(request, "console/staff.html", {"title": _("Équipe"), "team": team})


def _team_member(request, staff_id: int) -> Staff:
    member = get_object_or_404(Staff, pk=staff_id)
    if member.cpam_id != request.staff.cpam_id or member.pk == request.staff.pk:
        raise Http404
    return member


@staff_required(perms.can_manage_staff)
@require_POST
def staff_active(request, staff_id: int):
    member = _team_member(request, staff_id)
    staff_services.staff_active_set(
        staff=member,
        active=request.POST.get("active") == "1",
        actor=request.staff.actor,
        ip=client_ip(request),
    )
    messages.success(request, _("Accès mis à jour."))
    return redirect("console:staff")


@staff_required(perms.can_manage_staff)
@require_POST
def staff_enrolment(request, staff_id: int):
    member = _team_member(request, staff_id)
    link = staff_services.staff_enrolment_issue(staff=member, actor=request.staff.actor)
    response = render(
        request,
        "console/staff_link.html",
        {"title": _("Nouveau lien d’enrôlement"), "member": member, "link": link},
    )
    response["Referrer-Policy"] = "same-origin"
    return response
