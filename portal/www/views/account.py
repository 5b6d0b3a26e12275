"""Mon compte: the recovery channels (email, mobile), the password, every device, and the
communication need of a deaf or hard-of-hearing member."""

from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from phonenumber_field.phonenumber import to_python

from portal.accounts import channels, codes, services
from portal.accounts.passwords import rule_message
from portal.appointments.models import CommunicationMode
from portal.core.http import client_ip
from portal.notifications.sms import SmsError

from ..forms import (
    COMMUNICATION_MODE_HINTS,
    NO_COMMUNICATION_NEED,
    CommunicationModeForm,
    EmailChangeForm,
    MobileChangeForm,
    MobileCodeForm,
    PasswordChangeForm,
)

EMAIL_TOKEN_KEY = "email_change_token"

WRONG_PASSWORD = gettext_lazy("Mot de passe actuel incorrect.")


def _throttled_message(retry_after: int) -> str:
    minutes = max(1, round(retry_after / 60))
    return ngettext(
        "Trop de tentatives. Pour votre sécurité, patientez une minute avant de réessayer.",
        "Trop de tentatives. Pour votre sécurité, patientez %(minutes)d minutes avant de "
        "réessayer.",
        minutes,
    ) % {"minutes": minutes}


def _reauth_failed(form, exc) -> int:
    """Put the wrong-password or throttled error on the form; the HTTP status to answer."""
    if isinstance(exc, services.Throttled):
        form.add_error(None, _throttled_message(exc.retry_after))
        return 429
    form.add_error("current_password", WRONG_PASSWORD)
    return 400


def _keep_this_session(request) -> None:
    # Checking the password may upgrade its stored hash, which the session is
    # bound to: re-bind this session (and rotate its key) so it stays alive.
    update_session_auth_hash(request, request.user)


@login_required
def overview(request):
    account = request.user
    pending_email = channels.email_change_pending(account=account)
    pending_mobile = codes.code_pending(account=account, purpose=channels.MOBILE_CHANGE)
    return render(
        request,
        "www/account/overview.html",
        {
            "title": _("Mon compte"),
            "account": account,
            "masked_mobile": channels.phone_mask(account.mobile_phone),
            "pending_email": pending_email,
            "pending_mobile": pending_mobile,
            "communication_label": _communication_label(account.communication_mode),
        },
    )


# --- email ------------------------------------------------------------------------------


@sensitive_post_parameters("current_password")
@login_required
@require_http_methods(["GET", "POST"])
def email_change(request):
    form = EmailChangeForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            new_email = form.cleaned_data["email"]
            try:
                valid_until = channels.email_change_request(
                    account=request.user,
                    new_email=new_email,
                    current_password=form.cleaned_data["current_password"],
                    ip=client_ip(request),
                )
            except channels.SameAsCurrent:
                form.add_error("email", _("C’est déjà l’adresse de votre compte."))
            except channels.TooManyLinks:
                form.add_error(
                    None,
                    _(
                        "Vous avez demandé 3 changements d’adresse en moins d’une heure. Pour "
                        "votre sécurité, réessayez plus tard."
                    ),
                )
                status = 429
            except (services.InvalidCredentials, services.Throttled) as exc:
                status = _reauth_failed(form, exc)
            else:
                _keep_this_session(request)
                messages.success(
                    request,
                    _(
                        "Un courriel vient d’être envoyé à %(email)s. Ouvrez le lien qu’il "
                        "contient avant le %(date)s pour confirmer cette adresse. D’ici là, "
                        "votre adresse actuelle reste valable."
                    )
                    % {
                        "email": new_email,
                        "date": _date_time(valid_until),
                    },
                )
                return redirect("www:account")
    return render(
        request,
        "www/account/email.html",
        {"title": _("Modifier mon adresse électronique"), "form": form},
        status=status,
    )


def _date_time(moment) -> str:
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def email_change_link(request, token: str):
    """The emailed link: keep the token in the session and drop it from the address bar."""
    request.session[EMAIL_TOKEN_KEY] = token[:200]
    return redirect("www:account_email_confirm")


@require_http_methods(["GET", "POST"])
def email_change_confirm(request):
    """Confirm from the new mailbox; no login needed, the link proves the mailbox."""
    token = request.session.get(EMAIL_TOKEN_KEY, "")
    found, state = None, "invalid"
    try:
        found = channels.email_change_token_check(token=token)
        state = "valid"
    except services.TokenExpired:
        state = "expired"
    except services.TokenInvalid:
        pass
    if request.method == "POST" and state == "valid":
        try:
            channels.email_change_confirm(token=token, ip=client_ip(request))
        except services.TokenExpired:
            state = "expired"
        except services.TokenInvalid:
            state = "invalid"
        else:
            request.session.pop(EMAIL_TOKEN_KEY, None)
            messages.success(
                request,
                _("Votre nouvelle adresse électronique est confirmée : %(email)s.")
                % {"email": found.target},
            )
            return redirect("www:account" if request.user.is_authenticated else "www:login")
    if state != "valid":
        response = render(
            request,
            "www/account/email_invalid.html",
            {"title": _("Ce lien n’est plus valide"), "expired": state == "expired"},
            status=400 if request.method == "POST" else 200,
        )
    else:
        response = render(
            request,
            "www/account/email_confirm.html",
            {"title": _("Confirmer ma nouvelle adresse électronique"), "new_email": found.target},
        )
    response.no_store = True
    return response


# --- mobile -----------------------------------------------------------------------------


@sensitive_post_parameters("current_password")
@login_required
@require_http_methods(["GET", "POST"])
def mobile_change(request):
    form = MobileChangeForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                channels.mobile_change_request(
                    account=request.user,
                    new_mobile=form.cleaned_data["mobile_phone"].as_e164,
                    current_password=form.cleaned_data["current_password"],
                    ip=client_ip(request),
                )
            except channels.SameAsCurrent:
                form.add_error("mobile_phone", _("C’est déjà le numéro de votre compte."))
            except codes.TooManyCodes:
                form.add_error(None, _codes_throttled_message())
                status = 429
            except (services.InvalidCredentials, services.Throttled) as exc:
                status = _reauth_failed(form, exc)
            except SmsError:
                form.add_error(None, _sms_unavailable_message())
                status = 429
            else:
                _keep_this_session(request)
                return redirect("www:account_mobile_code")
    return render(
        request,
        "www/account/mobile.html",
        {
            "title": _("Modifier mon numéro de téléphone mobile"),
            "form": form,
            "has_mobile": bool(request.user.mobile_phone),
        },
        status=status,
    )


def _sms_unavailable_message():
    return _(
        "Nous ne pouvons pas envoyer de SMS à ce numéro pour le moment. Réessayez demain ou "
        "appelez le 36 46."
    )


def _codes_throttled_message() -> str:
    return _(
        "Vous avez demandé 3 codes en moins d’une heure. Pour votre sécurité, réessayez plus "
        "tard ou appelez le 36 46."
    )


@sensitive_post_parameters("code")
@login_required
@require_http_methods(["GET", "POST"])
def mobile_change_code(request):
    pending = channels.mobile_change_pending(account=request.user)
    if pending is None:
        messages.info(request, _("Indiquez d’abord votre nouveau numéro de téléphone mobile."))
        return redirect("www:account_mobile")
    form = MobileCodeForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                channels.mobile_change_confirm(
                    account=request.user, code=form.cleaned_data["code"], ip=client_ip(request)
                )
            except codes.CodeWrong as exc:
                form.add_error(
                    "code",
                    ValidationError(
                        ngettext(
                            "Code incorrect. Il vous reste %(count)d essai.",
                            "Code incorrect. Il vous reste %(count)d essais.",
                            exc.remaining,
                        )
                        % {"count": exc.remaining},
                        code=exc.code,
                    ),
                )
            except codes.CodeExhausted:
                form.add_error(
                    None,
                    _(
                        "Vous avez fait 5 essais : ce code n’est plus valable. Demandez un "
                        "nouveau code."
                    ),
                )
            except codes.CodeExpired:
                form.add_error(
                    None,
                    _("Ce code a expiré : il était valable 10 minutes. Demandez un nouveau code."),
                )
            except codes.CodeInvalid:
                form.add_error(None, _("Ce code n’est plus valable. Demandez un nouveau code."))
            else:
                messages.success(
                    request, _("Votre nouveau numéro de téléphone mobile est enregistré.")
                )
                return redirect("www:account")
        pending = channels.mobile_change_pending(account=request.user) or pending
    return render(
        request,
        "www/account/mobile_code.html",
        {
            "title": _("Confirmer mon nouveau numéro de téléphone mobile"),
            "form": form,
            "number": to_python(pending.target).as_national,
            "live": codes.code_pending(account=request.user, purpose=channels.MOBILE_CHANGE),
        },
        status=status,
    )


@login_required
@require_POST
def mobile_change_resend(request):
    try:
        channels.mobile_change_resend(account=request.user, ip=client_ip(request))
    except channels.NoPendingChange:
        messages.info(request, _("Indiquez d’abord votre nouveau numéro de téléphone mobile."))
        return redirect("www:account_mobile")
    except codes.TooManyCodes:
        messages.error(request, _codes_throttled_message())
    except SmsError:
        messages.error(request, _sms_unavailable_message())
    else:
        messages.success(
            request,
            _("Un nouveau code vient de vous être envoyé. Le précédent n’est plus valable."),
        )
    return redirect("www:account_mobile_code")


# --- password and devices ---------------------------------------------------------------


@sensitive_post_parameters("current_password", "password", "password2")
@login_required
@require_http_methods(["GET", "POST"])
def password_change(request):
    form = PasswordChangeForm(request.POST or None, account=request.user)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                account = channels.account_password_change(
                    account=request.user,
                    current_password=form.cleaned_data["current_password"],
                    new_password=form.cleaned_data["password"],
                    ip=client_ip(request),
                )
            except (services.InvalidCredentials, services.Throttled) as exc:
                status = _reauth_failed(form, exc)
            except services.WeakPassword as exc:  # the form checks the same rules
                for rule in exc.rules:
                    form.add_error("password", ValidationError(rule_message(rule), code=rule))
            else:
                # Every other session ended with the change; this one stays.
                update_session_auth_hash(request, account)
                messages.success(
                    request,
                    _(
                        "Votre mot de passe est modifié. Vos autres appareils sont déconnectés ; "
                        "un courriel de confirmation vous a été envoyé."
                    ),
                )
                return redirect("www:account")
    return render(
        request,
        "www/account/password.html",
        {"title": _("Modifier mon mot de passe"), "form": form},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def logout_everywhere(request):
    """GET asks for confirmation; POST ends every session, this one included."""
    if request.method == "GET":
        return render(
            request,
            "www/account/logout_everywhere.html",
            {"title": _("Se déconnecter de tous mes appareils")},
        )
    channels.account_logout_everywhere(account=request.user, ip=client_ip(request))
    logout(request)
    messages.success(
        request,
        _(
            "Vous êtes déconnecté(e) de tous vos appareils, y compris celui-ci. Reconnectez-vous "
            "pour continuer."
        ),
    )
    return redirect("www:login")


@login_required
@require_POST
def notifications(request):
    channels.account_notifications_set(
        account=request.user,
        new_payments=request.POST.get("notify_new_payments") == "1",
        ip=client_ip(request),
    )
    messages.success(request, _("Vos préférences de notification sont enregistrées."))
    return redirect("www:account")


# --- communication need -----------------------------------------------------------------


def _communication_label(mode: str) -> str:
    return CommunicationMode(mode).label if mode in CommunicationMode.values else ""


@login_required
@require_http_methods(["GET", "POST"])
def communication(request):
    """The member's communication need: none, or a mode of the relay service (LSF, TTRP,
    LfPC). Booking then offers the relay interview first, with this mode chosen."""
    account = request.user
    form = CommunicationModeForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            mode = form.cleaned_data["communication_mode"]
            try:
                channels.account_communication_mode_set(
                    account=account, mode=mode, ip=client_ip(request)
                )
            except channels.InvalidCommunicationMode:  # the form checks the same list
                field = form.fields["communication_mode"]
                form.add_error("communication_mode", field.error_messages["invalid_choice"])
            else:
                if mode:
                    text = _(
                        "Votre besoin de communication est enregistré : %(mode)s. Il sera "
                        "proposé en premier quand vous prendrez rendez-vous."
                    ) % {"mode": _communication_label(mode)}
                else:
                    text = _("C’est noté : vous n’avez pas de besoin de communication particulier.")
                messages.success(request, text)
                return redirect("www:account")
    if form.is_bound:
        selected = str(form.data.get("communication_mode", ""))
    else:
        selected = account.communication_mode or NO_COMMUNICATION_NEED
    errors = form.errors.get("communication_mode")
    options = [
        {
            "value": NO_COMMUNICATION_NEED,
            "label": _("Pas de besoin particulier"),
            "hint": _(
                "À chaque rendez-vous, vous choisissez un entretien téléphonique, sur place ou en "
                "visio avec interprétation / transcription."
            ),
        },
        *(
            {"value": value, "label": label, "hint": COMMUNICATION_MODE_HINTS[value]}
            for value, label in CommunicationMode.choices
        ),
    ]
    for option in options:
        option["checked"] = option["value"] == selected
    return render(
        request,
        "www/account/communication.html",
        {
            "title": _("Erreur : %(title)s") % {"title": _("Mon besoin de communication")}
            if errors
            else _("Mon besoin de communication"),
            "errors": errors,
            "options": options,
        },
        status=status,
    )
