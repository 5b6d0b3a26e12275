import time

from django.contrib import messages
from django.contrib.auth import login, logout
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from portal.accounts import services
from portal.accounts.middleware import SESSION_STARTED_KEY
from portal.audit.services import record
from portal.core.http import client_ip

from ..forms import LoginForm

INVALID = gettext_lazy("Numéro de sécurité sociale ou mot de passe incorrect.")


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def login_view(request):
    if request.user.is_authenticated:
        return redirect("www:space")
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            account = services.account_authenticate(
                nir=form.cleaned_data["nir"],
                password=form.cleaned_data["password"],
                ip=client_ip(request),
            )
        except services.Throttled as exc:
            minutes = max(1, round(exc.retry_after / 60))
            form.add_error(
                None,
                ngettext(
                    "Trop de tentatives de connexion. Pour votre sécurité, patientez une minute "
                    "avant de réessayer.",
                    "Trop de tentatives de connexion. Pour votre sécurité, patientez "
                    "%(minutes)d minutes avant de réessayer.",
                    minutes,
                )
                % {"minutes": minutes},
            )
            status = 429
        except services.InvalidCredentials:
            form.add_error(None, INVALID)
            status = 400
        else:
            # login() rotates the session key.
            login(request, account, backend="portal.accounts.backends.NirBackend")
            request.session[SESSION_STARTED_KEY] = time.time()
            next_url = request.GET.get("next", "")
            if not url_has_allowed_host_and_scheme(
                next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
            ):
                next_url = ""
            return redirect(next_url or "www:space")
    elif request.method == "POST":
        status = 400
    response = render(
        request, "www/login.html", {"title": _("Se connecter"), "form": form}, status=status
    )
    if status == 429:
        response["Retry-After"] = "60"
    return response


@require_http_methods(["GET", "POST"])
def logout_view(request):
    """GET asks for confirmation (a link or a prefetch must not log anyone out); POST logs out."""
    if request.method == "GET":
        if not request.user.is_authenticated:
            return redirect("www:home")
        return render(request, "www/logout.html", {"title": _("Se déconnecter")})
    if request.user.is_authenticated:
        account = request.user
        record(
            action="account.logout",
            actor=f"member:{account.pk}",
            member=account.member,
            ip=client_ip(request),
        )
    logout(request)
    messages.success(request, _("Vous êtes déconnecté(e)."))
    return redirect("www:home")
