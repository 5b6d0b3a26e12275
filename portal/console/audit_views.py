"""The supervisor's view of the audit trail: filters, pages, CSV export."""

from django import forms
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.audit.selectors import audit_csv_lines, audit_csv_rows, audit_entries
from portal.members import nir as nir_rules
from portal.members.models import Member
from portal.staff import perms
from portal.staff.models import Staff
from portal.www.forms import BaseForm, DateInput

from .decorators import staff_required


class AuditFilterForm(BaseForm):
    nir = forms.CharField(
        label=gettext_lazy("NIR de l’assuré (exact)"), required=False, max_length=30
    )
    actor = forms.CharField(
        label=gettext_lazy("Auteur (par exemple staff:12)"), required=False, max_length=100
    )
    action = forms.CharField(
        label=gettext_lazy("Action (début, par exemple console.)"), required=False, max_length=100
    )
    outcome = forms.CharField(label=gettext_lazy("Résultat"), required=False, max_length=50)
    since = forms.DateField(
        label=gettext_lazy("Du"), required=False, widget=DateInput(format="%Y-%m-%d")
    )
    until = forms.DateField(
        label=gettext_lazy("Au"), required=False, widget=DateInput(format="%Y-%m-%d")
    )


def _scoped_entries(request, form):
    """Entries about the supervisor's CPAM: its members, or done by its staff."""
    staff = request.staff
    data = form.cleaned_data if form.is_valid() else {}
    member = None
    if data.get("nir"):
        try:
            parsed = nir_rules.parse(data["nir"], require_key=False)
            member = Member.objects.filter(
                nir=parsed.number + nir_rules.key_for(parsed.number)
            ).first()
        except nir_rules.NirError:
            member = None
        if member is None:
            return audit_entries().none()
    entries = audit_entries(
        member=member,
        actor=data.get("actor") or None,
        action_prefix=data.get("action") or None,
        since=data.get("since"),
        until=data.get("until"),
        outcome=data.get("outcome") or None,
    )
    own_staff = [
        f"staff:{pk}" for pk in Staff.objects.filter(cpam=staff.cpam).values_list("pk", flat=True)
    ]
    return entries.filter(Q(member__cpam=staff.cpam) | Q(actor__in=own_staff))


@staff_required(perms.can_view_audit)
def audit_trail(request):
    form = AuditFilterForm(request.GET or None)
    page = Paginator(_scoped_entries(request, form), 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "console/audit.html",
        {"title": _("Journal d’audit"), "form": form, "page": page, "query": query.urlencode()},
    )


@staff_required(perms.can_export_audit)
def audit_export(request):
    form = AuditFilterForm(request.GET or None)
    lines = audit_csv_lines(audit_csv_rows(_scoped_entries(request, form)))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="journal-audit.csv"'
    from portal.audit.services import record
    from portal.core.http import client_ip

    record(
        action="console.audit.exported",
        actor=request.staff.actor,
        ip=client_ip(request),
        data={
            "outcome": "exported",
            "filters": {k: v for k, v in request.GET.items() if k != "nir"},
        },
    )
    return response
