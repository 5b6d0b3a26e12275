"""API v1: a stable contract for the mobile app and integrators."""

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from ninja import NinjaAPI, Status
from phonenumber_field.phonenumber import to_python as phone_to_python

from portal.accounts import reset, services
from portal.core.http import client_ip
from portal.members.nir import NirError, mask
from portal.notifications.sms import SmsRecipientRefused, sms_recipient_normalize
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
    SmsCodeResetIn,
    StatusOut,
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
