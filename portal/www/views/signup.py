"""Créer mon compte: proof of identity, then credentials, then the emailed link."""

import time

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from portal.accounts import services
from portal.accounts.passwords import rule_message
from portal.core.http import client_ip
from portal.members.models import Member

from ..forms import CredentialsForm, IdentityForm

VERIFIED_KEY = "signup_member_id"
VERIFIED_AT_KEY = "signup_verified_at"
CONFIRM_TOKEN_KEY = "signup_confirm_token"
VERIFIED_TTL = 20 * 60

IDENTITY_FAILED = gettext_lazy(
    "Les informations saisies ne permettent pas de vous identifier. Vérifiez votre numéro de "
    "sécurité sociale, votre date de naissance et les 7 derniers caractères de votre IBAN."
)


def _verified_member(request):
    member_id = request.session.get(VERIFIED_KEY)
    if not member_id or time.time() - request.session.get(VERIFIED_AT_KEY, 0) > VERIFIED_TTL:
        return None
    return Member.objects.filter(pk=member_id).first()


@sensitive_post_parameters("iban_last7")
@require_http_methods(["GET", "POST"])
def identity(request):
    form = IdentityForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                member = services.account_identity_verify(
                    nir=form.cleaned_data["nir"],
                    birth_date=form.cleaned_data["birth_date"],
                    iban_last7=form.cleaned_data["iban_last7"],
                    ip=client_ip(request),
                )
            except services.Throttled:
                form.add_error(
                    None,
                    _(
                        "Trop de tentatives. Pour votre sécurité, réessayez dans une heure ou "
                        "appelez le 36 46."
                    ),
                )
                status = 429
            except services.IdentityNotVerified:
                form.add_error(None, IDENTITY_FAILED)
            else:
                request.session.cycle_key()
                request.session[VERIFIED_KEY] = member.pk
                request.session[VERIFIED_AT_KEY] = time.time()
                return redirect("www:signup_credentials")
    return render(
        request,
        "www/signup/identity.html",
        {"title": _("Créer mon compte — Étape 1 sur 2"), "form": form},
        status=status,
    )


@sensitive_post_parameters("password", "password2")
@require_http_methods(["GET", "POST"])
def credentials(request):
    member = _verified_member(request)
    if member is None:
        messages.info(request, _("Pour créer votre compte, commencez par vous identifier."))
        return redirect("www:signup")
    form = CredentialsForm(request.POST or None, member=member, initial={"email": member.email})
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            phone = form.cleaned_data.get("mobile_phone")
            try:
                services.account_create(
                    member=member,
                    email=form.cleaned_data["email"],
                    mobile_phone=phone.as_e164 if phone else "",
                    password=form.cleaned_data["password"],
                    ip=client_ip(request),
                )
            except services.WeakPassword as exc:  # the form checks the same rules; kept for safety
                for rule in exc.rules:
                    form.add_error("password", ValidationError(rule_message(rule), code=rule))
            else:
                request.session.pop(VERIFIED_KEY, None)
                request.session.pop(VERIFIED_AT_KEY, None)
                request.session["signup_email"] = form.cleaned_data["email"]
                return redirect("www:signup_sent")
    return render(
        request,
        "www/signup/credentials.html",
        {"title": _("Créer mon compte — Étape 2 sur 2"), "form": form},
        status=status,
    )


def sent(request):
    return render(
        request,
        "www/signup/sent.html",
        {"title": _("Vérifiez votre messagerie"), "email": request.session.get("signup_email", "")},
    )


def confirm_link(request, token: str):
    """The emailed link: keep the token in the session and drop it from the address bar."""
    request.session[CONFIRM_TOKEN_KEY] = token[:200]
    return redirect("www:signup_confirm")


@require_http_methods(["GET", "POST"])
def confirm(request):
    token = request.session.get(CONFIRM_TOKEN_KEY, "")
    state = services.confirmation_token_state(token=token) if token else "invalid"
    if request.method == "POST" and state == "valid":
        try:
            services.account_confirm(token=token, ip=client_ip(request))
        except services.TokenInvalid:
            state = "invalid"
        else:
            request.session.pop(CONFIRM_TOKEN_KEY, None)
            messages.success(
                request, _("Votre compte est activé. Vous pouvez maintenant vous connecter.")
            )
            return redirect("www:login")
    if state != "valid":
        return render(
            request,
            "www/signup/confirm_invalid.html",
            {"title": _("Ce lien n’est plus valide"), "expired": state == "expired"},
            status=400 if request.method == "POST" else 200,
        )
    return render(request, "www/signup/confirm.html", {"title": _("Activer mon compte")})
