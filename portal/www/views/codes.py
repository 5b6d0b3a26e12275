"""The member's side of the assisted recovery: a code from an advisor (SMS) or the front desk."""

import time

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from portal.accounts import services
from portal.accounts.models import Account
from portal.accounts.passwords import rule_message
from portal.console.forms import ActivationForm, CodeRedeemForm
from portal.core.http import client_ip
from portal.recovery import services as recovery
from portal.www.reset_forms import NewPasswordForm

from .reset import reset_page

REDEEMED = "recovery_redeemed"
REDEEMED_TTL = 10 * 60


def _refused_message():
    return _(
        "Numéro ou code incorrect, expiré ou déjà utilisé. Après 5 essais, le code ne fonctionne plus : rappelez le 36 46."
    )


def _redeem_view(request, *, kind: str, redeem, template: str, title: str):
    form = CodeRedeemForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                account = redeem(
                    nir=form.cleaned_data["nir"],
                    code=form.cleaned_data["code"],
                    ip=client_ip(request),
                )
            except services.Throttled:
                form.add_error(
                    None, _("Trop de tentatives depuis votre connexion. Réessayez dans une heure.")
                )
                status = 429
            except recovery.CodeRefused:
                form.add_error(None, _refused_message())
            else:
                request.session.cycle_key()
                request.session[REDEEMED] = {"account": account.pk, "kind": kind, "at": time.time()}
                return redirect(f"reset:{kind}_password")
    return render(request, template, {"title": title, "form": form}, status=status)


def _redeemed_account(request, kind: str):
    state = request.session.get(REDEEMED) or {}
    if state.get("kind") != kind or time.time() - state.get("at", 0) > REDEEMED_TTL:
        return None
    return (
        Account.objects.select_related("member")
        .filter(pk=state["account"], state=Account.State.ACTIVE)
        .first()
    )


@reset_page
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def sms_code(request):
    return _redeem_view(
        request,
        kind="sms",
        redeem=recovery.recovery_code_redeem,
        template="www/reset/sms_code.html",
        title=_("J’ai reçu un code par SMS"),
    )


@reset_page
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def activation_code(request):
    return _redeem_view(
        request,
        kind="activation",
        redeem=recovery.activation_code_redeem,
        template="www/reset/activation_code.html",
        title=_("J’ai un code d’activation"),
    )


def _password_view(request, *, kind: str, form_class, template: str, apply):
    account = _redeemed_account(request, kind)
    if account is None:
        messages.info(
            request, _("Saisissez d’abord votre numéro de sécurité sociale et votre code.")
        )
        return redirect(f"reset:{kind}_code")
    form = form_class(request.POST or None, account=account)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                apply(account, form.cleaned_data)
            except services.WeakPassword as exc:
                for code in exc.rules:
                    form.add_error("password", rule_message(code))
            else:
                request.session.pop(REDEEMED, None)
                messages.success(
                    request,
                    _(
                        "Votre mot de passe a été modifié. Connectez-vous avec votre nouveau mot de passe."
                    ),
                )
                return redirect("www:login")
    return render(
        request,
        template,
        {"title": _("Choisir un nouveau mot de passe"), "form": form},
        status=status,
    )


@reset_page
@sensitive_post_parameters("password", "password2")
@require_http_methods(["GET", "POST"])
def sms_password(request):
    def apply(account, data):
        recovery.recovery_password_set(
            account=account,
            password=data["password"],
            ip=client_ip(request),
            reason="sms_recovery_code",
        )

    return _password_view(
        request,
        kind="sms",
        form_class=NewPasswordForm,
        template="www/reset/new_password.html",
        apply=apply,
    )


@reset_page
@sensitive_post_parameters("password", "password2")
@require_http_methods(["GET", "POST"])
def activation_password(request):
    def apply(account, data):
        phone = data.get("mobile_phone")
        recovery.activation_complete(
            account=account,
            password=data["password"],
            email=data.get("email") or "",
            mobile_phone=phone.as_e164 if phone else "",
            ip=client_ip(request),
        )

    return _password_view(
        request,
        kind="activation",
        form_class=ActivationForm,
        template="www/reset/activation_password.html",
        apply=apply,
    )
