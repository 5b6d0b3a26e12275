"""Mes paiements and Mes indemnités journalières: thin views over `portal.payments.selectors`."""

from datetime import date

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.core.csv_export import csv_lines, safe_cell
from portal.payments import documents, selectors
from portal.payments.kept_pages import KeptPages
from portal.payments.selectors import Filters

from ..forms import BaseForm, DateInput


class PaymentFilterForm(BaseForm):
    KINDS = [
        ("", gettext_lazy("Tous")),
        ("soins", gettext_lazy("Soins")),
        ("ij", gettext_lazy("Indemnités journalières")),
    ]

    since = forms.DateField(
        label=gettext_lazy("Soins du"), required=False, widget=DateInput(format="%Y-%m-%d")
    )
    until = forms.DateField(
        label=gettext_lazy("au"), required=False, widget=DateInput(format="%Y-%m-%d")
    )
    beneficiary = forms.ChoiceField(label=gettext_lazy("Pour"), required=False)
    kind = forms.ChoiceField(label=gettext_lazy("Type"), required=False, choices=KINDS)

    def __init__(self, *args, member, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["beneficiary"].choices = [
            ("", _("Toute la famille")),
            ("me", f"{member.first_names} ({_('vous')})"),
            *[(str(b.pk), b.first_names) for b in member.beneficiaries.all()],
        ]
        for name in ("beneficiary", "kind"):
            self.fields[name].widget.attrs["class"] = "fr-select"

    def filters(self) -> Filters:
        data = self.cleaned_data if self.is_valid() else {}
        return Filters(
            since=data.get("since"),
            until=data.get("until"),
            beneficiary=data.get("beneficiary") or None,
        )

    def chosen_kind(self) -> str:
        return (self.cleaned_data.get("kind") if self.is_valid() else "") or ""


CHART_HEIGHT = 160
CHART_COLUMN = 40


def _chart(account):
    """The last 12 months as stacked bars, computed here and drawn as SVG.

    SVG attributes, not inline styles: the Content-Security-Policy allows no
    inline style, and the page needs no JavaScript.
    """
    months, series, totals = selectors.monthly_totals(account=account, today=timezone.localdate())
    top = max(totals) if totals and max(totals) > 0 else 1
    columns = []
    for i, (year, month) in enumerate(months):
        y = CHART_HEIGHT
        parts = []
        for index, (name, values) in enumerate(series):
            if not values[i]:
                continue
            height = round(float(values[i] / top) * (CHART_HEIGHT - 10), 1)
            y -= height
            parts.append(
                {
                    "name": name,
                    "amount": values[i],
                    "y": round(y, 1),
                    "height": height,
                    "color": index % 4,
                }
            )
        columns.append(
            {
                "label": date(year, month, 1),
                "total": totals[i],
                "parts": parts,
                "x": i * CHART_COLUMN + 4,
            }
        )
    return {
        "columns": columns,
        "names": [name for name, _ in series],
        "legend": [{"name": name, "color": index % 4} for index, (name, _) in enumerate(series)],
        "width": len(months) * CHART_COLUMN,
        "height": CHART_HEIGHT + 20,
        "bar": CHART_COLUMN - 8,
        "label_y": CHART_HEIGHT + 14,
    }


def _list_context(request, account, *, has_stoppages=None) -> dict:
    """What `www/payments/list_body.html` shows for this request."""
    form = PaymentFilterForm(request.GET or None, member=account.member)
    filters = form.filters()
    kind = form.chosen_kind()
    transfers, next_cursor = ([], None)
    if kind in ("", "soins"):
        transfers, next_cursor = selectors.transfers_page(
            account=account, filters=filters, cursor=request.GET.get("apres", "")[:200]
        )
    # The page only links to the stoppages (Mes indemnités journalières) when there are some.
    allowances = (
        (selectors.has_stoppages(account=account) if has_stoppages is None else has_stoppages)
        if kind in ("", "ij") and not request.GET.get("apres")
        else False
    )
    query = request.GET.copy()
    query.pop("apres", None)
    return {
        "form": form,
        "transfers": transfers,
        "next_cursor": next_cursor,
        "query": query.urlencode(),
        "allowances": allowances,
        "chart": _chart(account) if not request.GET.get("apres") else None,
        "statement_months": documents.statement_months(today=timezone.localdate()),
    }


# The first page, kept drawn per member (portal/payments/kept_pages.py).
first_pages = KeptPages(
    "first-page",
    label="first page of Mes paiements",
    templates=[
        "www/payments/list_body.html",
        "www/includes/field.html",
        "django/forms/widgets/select.html",
        "django/forms/widgets/select_option.html",
        "django/forms/widgets/input.html",
        "django/forms/widgets/attrs.html",
    ],
    modules=[__name__, BaseForm.__module__, selectors.__name__, documents.__name__],
)


@login_required
def payments(request):
    account = request.user
    title = _("Mes paiements")
    version = None if request.GET else selectors.first_page_version(account=account)
    if version is None:  # a filter or a later page: drawn for this request only
        return render(
            request, "www/payments/list.html", {"title": title, **_list_context(request, account)}
        )
    key = first_pages.key(
        account,
        version,
        account.member.first_names,
        timezone.localdate().isoformat(),
        translation.get_language(),
    )
    body = first_pages.get(key)
    if body is None:
        body = render_to_string(
            "www/payments/list_body.html",
            _list_context(request, account, has_stoppages=version.stoppages > 0),
        )
        first_pages.set(key, body)
    # The frame alone around the kept body: no `{% extends %}` to resolve.
    page_body = mark_safe(body)  # noqa: S308 (our own template's output)
    return render(request, "base.html", {"title": title, "page_body": page_body})


@login_required
def line_detail(request, line_id: str):
    line = selectors.reimbursement_line(account=request.user, line_id=line_id[:64])
    return render(
        request, "www/payments/line.html", {"title": _("Détail d’un remboursement"), "line": line}
    )


@login_required
def export_csv(request):
    account = request.user
    form = PaymentFilterForm(request.GET or None, member=account.member)
    lines = selectors.lines_for_export(account=account, filters=form.filters())
    header = [
        "date_des_soins",
        "beneficiaire",
        "acte",
        "professionnel",
        "montant_paye",
        "base_remboursement",
        "taux",
        "montant_rembourse",
        "participation_forfaitaire",
        "franchise",
        "net_rembourse",
        "verse_a",
        "date_paiement",
        "reference_paiement",
        "statut",
    ]

    def rows():
        yield header
        for line in lines.iterator(chunk_size=1000):
            yield (
                [
                    line.care_date.isoformat(),
                    line.beneficiary.first_names
                    if line.beneficiary
                    else account.member.first_names,
                    safe_cell(line.act_label),
                    safe_cell(line.professional),
                    line.amount_paid,
                    line.base_amount,
                    line.rate,
                    line.gross_reimbursed,
                    line.participation_forfaitaire,
                    line.franchise,
                    line.net_reimbursed,
                    line.get_payee_display(),
                    line.payment_date.isoformat() if line.payment_date else "",
                    safe_cell(line.payment_reference),
                    line.get_status_display(),
                ]
            )

    response = StreamingHttpResponse(
        csv_lines(rows(), delimiter=";"), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="mes-paiements.csv"'
    return response


@login_required
def allowances(request):
    since, until = documents.default_period(today=timezone.localdate())
    return render(
        request,
        "www/payments/allowances.html",
        {
            "title": _("Mes indemnités journalières"),
            "stoppages": selectors.stoppages(account=request.user),
            "certificate_since": since,
            "certificate_until": until,
            "max_months": documents.ALLOWANCE_CERTIFICATE_MAX_MONTHS,
        },
    )


def _pdf_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _statement_month(value: str):
    """The first day of a `YYYY-MM` month the member may download; else a 404."""
    month = documents.parse_statement_month(value[:20])
    if month is None or not documents.statement_available(month, today=timezone.localdate()):
        raise Http404
    return month


@login_required
def statement_choose(request):
    """The month picked in the form of Mes paiements, sent to the statement's own address."""
    month = _statement_month(request.GET.get("mois", ""))
    return redirect("www:payment_statement", month=f"{month:%Y-%m}")


@login_required
def statement_pdf(request, month: str):
    first = _statement_month(month)
    content = documents.monthly_statement_pdf(
        account=request.user, month=first, today=timezone.localdate()
    )
    return _pdf_response(content, documents.monthly_statement_filename(first))


@login_required
def entitlement_certificate_pdf(request):
    today = timezone.localdate()
    content = documents.entitlement_certificate_pdf(account=request.user, today=today)
    return _pdf_response(content, documents.entitlement_certificate_filename(today))


def _period_error_text(code: str) -> str:
    return {
        "missing": _("Indiquez la date de début et la date de fin de la période."),
        "format": _(
            "Les dates de la période ne sont pas valides. Utilisez le format AAAA-MM-JJ, "
            "par exemple 2025-01-31."
        ),
        "order": _("La date de fin de la période doit être postérieure à sa date de début."),
        "too_long": _("La période ne peut pas dépasser %(months)s mois.")
        % {"months": documents.ALLOWANCE_CERTIFICATE_MAX_MONTHS},
    }[code]


@login_required
def allowance_certificate_pdf(request):
    try:
        since, until = documents.parse_period(
            request.GET.get("du", "")[:20], request.GET.get("au", "")[:20]
        )
    except documents.PeriodError as error:
        return render(
            request,
            "www/error.html",
            {"title": _("Période incorrecte"), "text": _period_error_text(error.code)},
            status=400,
        )
    content = documents.allowance_certificate_pdf(
        account=request.user, since=since, until=until, today=timezone.localdate()
    )
    return _pdf_response(content, documents.allowance_certificate_filename(since, until))
