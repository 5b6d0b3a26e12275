"""Mot de passe oublié: request, emailed link, new password."""

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from portal.accounts import reset, services
from portal.accounts.passwords import rule_message
from portal.core.http import client_ip

from ..reset_forms import NewPasswordForm, ResetRequestForm

TOKEN_KEY = "password_reset_token"


def _ttl_minutes() -> int:
    return settings.PASSWORD_RESET_LINK_TTL // 60


def reset_page(view):
    """No referrer to other sites (the link must not leak) and no cache, on every reset page.

    `same-origin`, not `no-referrer`: with the latter a browser sends `Origin: null`
    with the page's own forms, which the CSRF check refuses.
    """

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = "same-origin"
        add_never_cache_headers(response)
        return response

    return wrapped


def _throttled(request):
    response = render(
        request, "www/reset/throttled.html", {"title": _("Trop de demandes")}, status=429
    )
    response["Retry-After"] = "3600"
    return response


@reset_page
@require_http_methods(["GET", "POST"])
def request_view(request):
    form = ResetRequestForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                reset.password_reset_request(
                    nir=form.cleaned_data["nir"],
                    birth_date=form.cleaned_data["birth_date"],
                    ip=client_ip(request),
                )
            except services.Throttled:
                return _throttled(request)
            return redirect("reset:sent")
        return render(
            request,
            "www/reset/request.html",
            {"title": _("Mot de passe oublié"), "form": form},
            status=400,
        )
    return render(
        request, "www/reset/request.html", {"title": _("Mot de passe oublié"), "form": form}
    )


@reset_page
def sent(request):
    """The same page whatever the details: nothing here depends on the request."""
    return render(
        request,
        "www/reset/sent.html",
        {"title": _("Vérifiez votre messagerie"), "ttl_minutes": _ttl_minutes()},
    )


@reset_page
def link(request, token: str):
    """The emailed link: keep the token in the session, drop it from the address bar."""
    try:
        reset.password_reset_link_opened(token=token[:200], ip=client_ip(request))
    except services.Throttled:
        return _throttled(request)
    request.session[TOKEN_KEY] = token[:200]
    return redirect("reset:new_password")


def _invalid(request, *, expired: bool, status: int = 400):
    return render(
        request,
        "www/reset/invalid.html",
        {
            "title": _("Ce lien n’est plus valide"),
            "expired": expired,
            "ttl_minutes": _ttl_minutes(),
        },
        status=status,
    )


@reset_page
@sensitive_post_parameters("password", "password2")
@require_http_methods(["GET", "POST"])
def new_password(request):
    token = request.session.get(TOKEN_KEY, "")
    try:
        found = reset.reset_token_check(token=token)
    except services.TokenInvalid as exc:
        return _invalid(request, expired=isinstance(exc, services.TokenExpired))
    account = found.account
    form = NewPasswordForm(request.POST or None, account=account)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                reset.password_reset_confirm(
                    token=token, password=form.cleaned_data["password"], ip=client_ip(request)
                )
            except services.Throttled:
                return _throttled(request)
            except services.TokenInvalid as exc:
                return _invalid(request, expired=isinstance(exc, services.TokenExpired))
            except services.WeakPassword as exc:
                for code in exc.rules:
                    form.add_error("password", rule_message(code))
            else:
                request.session.pop(TOKEN_KEY, None)
                messages.success(
                    request,
                    _(
                        "Votre mot de passe a été modifié. Connectez-vous avec votre nouveau mot de passe."
                    ),
                )
                return redirect("www:login")
    return render(
        request,
        "www/reset/new_password.html",
        {"title": _("Choisir un nouveau mot de passe"), "form": form},
        status=status,
    )
