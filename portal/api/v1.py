"""API v1: a stable contract for the mobile app and integrators."""

from datetime import date

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.http import HttpResponse
from django.utils import timezone
from ninja import NinjaAPI, Query, Status
from phonenumber_field.phonenumber import to_python as phone_to_python

from portal.accounts import reset, services
from portal.core.http import client_ip
from portal.members.nir import NirError, mask
from portal.notifications.sms import SmsRecipientRefused, sms_recipient_normalize
from portal.payments import documents
from portal.payments import selectors as payments
from portal.recovery import services as recovery

from . import errors
from .auth import BearerToken
from .parser import StrictJsonParser
from .schemas import (
    AcceptedOut,
    AccountCreateIn,
    DetailOut,
    ErrorOut,
    MeOut,
    PasswordResetConfirmIn,
    PasswordResetIn,
    ReimbursementPage,
    SmsCodeResetIn,
    StatusOut,
    StoppageOut,
    TokenIn,
    TokenOut,
    WeakPasswordOut,
)

api = NinjaAPI(
    title="Mon compte santé — API",
    version="1.0.0",
    urls_namespace="api-v1",
    parser=StrictJsonParser(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
errors.install(api)

ACCEPTED = {
    "status": "accepted",
    "detail": (
        "Si les informations correspondent à un assuré, un courriel de confirmation a été "
        "envoyé à l’adresse indiquée. Le lien est valable 24 heures."
    ),
}


@api.post(
    "/accounts",
    response={202: AcceptedOut, 400: ErrorOut | WeakPasswordOut, 429: ErrorOut},
    tags=["accounts"],
)
def account_create(request, payload: AccountCreateIn):
    """Create an online account: the proof of identity, then the credentials."""
    ip = client_ip(request)
    try:
        validate_email(payload.email)
    except DjangoValidationError:
        return Status(400, {"error": "invalid_email"})
    phone = None
    if payload.mobile_phone:
        phone = phone_to_python(payload.mobile_phone, region="FR")
        try:
            sms_recipient_normalize(phone)
        except SmsRecipientRefused:
            return Status(400, {"error": "invalid_mobile_phone"})
    member = services.account_identity_verify(
        nir=payload.nir, birth_date=payload.birth_date, iban_last7=payload.iban_last7, ip=ip
    )
    services.account_create(
        member=member,
        email=payload.email,
        mobile_phone=phone.as_e164 if phone else "",
        password=payload.password,
        ip=ip,
    )
    return Status(202, ACCEPTED)


@api.post("/auth/token", response={200: TokenOut, 401: ErrorOut, 429: ErrorOut}, tags=["auth"])
def auth_token(request, payload: TokenIn):
    ip = client_ip(request)
    token, ttl = services.account_login_api(nir=payload.nir, password=payload.password, ip=ip)
    return Status(200, {"access_token": token, "token_type": "bearer", "expires_in": ttl})


@api.post("/auth/logout", response={204: None, 401: ErrorOut}, auth=BearerToken(), tags=["auth"])
def auth_logout(request):
    services.api_token_revoke(token=request.api_token, ip=client_ip(request))
    return Status(204, None)


@api.get("/me", response={200: MeOut, 401: ErrorOut}, auth=BearerToken(), tags=["accounts"])
def me(request):
    account = request.auth
    member = account.member
    return Status(
        200,
        {
            "nir": mask(member.nir),
            "first_names": member.first_names,
            "last_name": member.last_name,
            "email": account.email,
            "mobile_phone": account.mobile_phone.as_e164 if account.mobile_phone else "",
            "cpam": {"code": member.cpam.code, "name": member.cpam.name},
        },
    )


def _reset_accepted() -> dict:
    minutes = settings.PASSWORD_RESET_LINK_TTL // 60
    return {
        "detail": (
            "Si les informations correspondent à un compte, un courriel contenant un lien "
            f"valable {minutes} minutes a été envoyé à l’adresse électronique enregistrée "
            "dans ce compte."
        )
    }


@api.post(
    "/password-reset",
    response={202: DetailOut, 400: ErrorOut, 429: ErrorOut},
    tags=["password-reset"],
)
def password_reset(request, payload: PasswordResetIn):
    """Ask for a reset link. The answer is the same whether or not the details match."""
    if not payload.nir.isascii():
        return Status(400, {"error": "invalid_nir"})
    try:
        reset.password_reset_request(
            nir=payload.nir, birth_date=payload.birth_date, ip=client_ip(request)
        )
    except NirError:
        return Status(400, {"error": "invalid_nir"})
    return Status(202, _reset_accepted())


@api.post(
    "/password-reset/confirm",
    response={200: StatusOut, 400: ErrorOut | WeakPasswordOut, 429: ErrorOut},
    tags=["password-reset"],
)
def password_reset_confirm(request, payload: PasswordResetConfirmIn):
    """Set a new password with the token of an emailed link."""
    reset.password_reset_confirm(
        token=payload.token, password=payload.new_password, ip=client_ip(request)
    )
    return Status(200, {"status": "password_changed"})


@api.post(
    "/password-reset/sms-code",
    response={200: StatusOut, 400: ErrorOut | WeakPasswordOut, 429: ErrorOut},
    tags=["password-reset"],
)
def password_reset_sms_code(request, payload: SmsCodeResetIn):
    """Set a new password with the code a 36 46 advisor sent by SMS."""
    try:
        recovery.recovery_code_reset(
            nir=payload.nir, code=payload.code, password=payload.new_password, ip=client_ip(request)
        )
    except recovery.CodeRefused:
        return Status(400, {"error": "invalid_code"})
    return Status(200, {"status": "password_changed"})


def _line_out(line) -> dict:
    amounts = (
        "amount_paid",
        "base_amount",
        "rate",
        "gross_reimbursed",
        "participation_forfaitaire",
        "franchise",
        "net_reimbursed",
    )
    return {
        "line_id": line.line_id,
        "beneficiary_nir": line.beneficiary.nir if line.beneficiary else "",
        "care_date": line.care_date,
        "act_code": line.act_code,
        "act_label": line.act_label,
        "professional": line.professional,
        **{name: f"{getattr(line, name):.2f}" for name in amounts},
        "payee": line.payee,
        "payment_date": line.payment_date,
        "payment_reference": line.payment_reference,
        "transmitted_to_complementary": line.transmitted_to_complementary,
        "status": line.status,
    }


@api.get(
    "/reimbursements",
    response={200: ReimbursementPage, 400: ErrorOut, 401: ErrorOut},
    auth=BearerToken(),
    tags=["payments"],
)
def reimbursements(
    request,
    from_: date | None = Query(None, alias="from"),
    to: date | None = None,
    beneficiary: str | None = Query(None, max_length=20),
    cursor: str = Query("", max_length=200),
):
    """The member's reimbursement lines, newest payment first, keyset-paginated (`next_cursor`).

    `beneficiary`: a beneficiary's NIR, or `me` for the member's own care.
    """
    chosen = None
    if beneficiary == "me":
        chosen = "me"
    elif beneficiary:
        found = request.auth.member.beneficiaries.filter(nir=beneficiary).first()
        if found is None:
            return Status(400, {"error": "unknown_beneficiary"})
        chosen = str(found.pk)
    filters = payments.Filters(since=from_, until=to, beneficiary=chosen)
    try:
        items, next_cursor = payments.lines_api_page(
            account=request.auth, filters=filters, cursor=cursor
        )
    except ValueError:
        return Status(400, {"error": "invalid_cursor"})
    return Status(200, {"items": [_line_out(line) for line in items], "next_cursor": next_cursor})


@api.get(
    "/daily-allowances",
    response={200: list[StoppageOut], 401: ErrorOut},
    auth=BearerToken(),
    tags=["payments"],
)
def daily_allowances(request):
    """The member's work stoppages with their daily-allowance payments."""
    result = []
    for item in payments.stoppages(account=request.auth):
        stoppage = item["stoppage"]
        result.append(
            {
                "stoppage_id": stoppage.stoppage_id,
                "stoppage_kind": stoppage.kind,
                "stoppage_start": stoppage.start,
                "stoppage_end": stoppage.end,
                "waiting_days": stoppage.waiting_days,
                "total_paid": f"{item['total']:.2f}",
                "next_payment_expected": item["next_date"],
                "payments": [
                    {
                        "payment_id": p.payment_id,
                        "period_start": p.period_start,
                        "period_end": p.period_end,
                        "days": p.days,
                        **{
                            k: f"{getattr(p, k):.2f}"
                            for k in ("daily_gross", "gross", "csg", "crds", "net")
                        },
                        "payment_date": p.payment_date,
                        "status": p.status,
                    }
                    for p in item["payments"]
                ],
            }
        )
    return Status(200, result)


@api.get(
    "/documents/monthly-statement",
    response={200: None, 400: ErrorOut, 401: ErrorOut, 404: ErrorOut},
    auth=BearerToken(),
    tags=["documents"],
    openapi_extra={
        "responses": {
            200: {
                "description": "The relevé mensuel, a tagged PDF",
                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def monthly_statement(request, month: str = ""):
    """The member's relevé mensuel (PDF) of `month` (`YYYY-MM`), one of the last 27 months.

    A malformed month is `400 invalid_month`; a month outside the window `404 month_not_available`.
    """
    first = documents.parse_statement_month(month[:20])
    if first is None:
        return Status(400, {"error": "invalid_month"})
    today = timezone.localdate()
    if not documents.statement_available(first, today=today):
        return Status(404, {"error": "month_not_available"})
    content = documents.monthly_statement_pdf(account=request.auth, month=first, today=today)
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="{documents.monthly_statement_filename(first)}"'
    )
    return response
