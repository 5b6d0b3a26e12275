"""The advisor console (`/conseiller/`): thin views over `portal.staff` and `portal.recovery`."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from portal.accounts import services as account_services
from portal.accounts.models import Account
from portal.core.http import client_ip
from portal.members.models import Member
from portal.members.nir import mask
from portal.notifications.sms import SmsError
from portal.recovery import services as recovery
from portal.recovery.models import ConsoleBlock
from portal.staff import perms, totp
from portal.staff import services as staff_services
from portal.staff.auth import staff_login, staff_logout

from .decorators import staff_required
from .forms import (
    DeleteAccountForm,
    EnrolmentForm,
    IdentityCheckForm,
    MemberSearchForm,
    StaffLoginForm,
    VisitForm,
)

SEARCHED = "console_members"
CHECKS = "console_checks"
ENROL_TOKEN = "console_enrolment_token"


# --- sign-in and enrolment ----------------------------------------------------


@sensitive_post_parameters("password", "code")
@require_http_methods(["GET", "POST"])
def login_view(request):
    if request.staff:
        return redirect("console:home")
    form = StaffLoginForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                staff = staff_services.staff_authenticate(
                    email=form.cleaned_data["email"],
                    password=form.cleaned_data["password"],
                    code=form.cleaned_data["code"],
                    ip=client_ip(request),
                )
            except account_services.Throttled:
                form.add_error(
                    None, _("Trop de tentatives. Patientez une minute avant de réessayer.")
                )
                status = 429
            except account_services.InvalidCredentials:
                form.add_error(None, _("Adresse, mot de passe ou code incorrect."))
            else:
                _forget_console_state(request)
                staff_login(request, staff)
                return redirect("console:home")
    return render(
        request,
        "console/login.html",
        {"title": _("Connexion conseiller"), "form": form},
        status=status,
    )


def _forget_console_state(request) -> None:
    """Members found and checks passed belong to one staff login: on a shared computer the
    next advisor must search (audited) and check the identity again themselves."""
    for key in (SEARCHED, CHECKS):
        request.session.pop(key, None)


@require_POST
def logout_view(request):
    _forget_console_state(request)
    staff_logout(request)
    messages.success(request, _("Vous êtes déconnecté(e) de la console."))
    return redirect("console:login")


def enrolment_link(request, token: str):
    request.session[ENROL_TOKEN] = token[:200]
    response = redirect("console:enrolment")
    response["Referrer-Policy"] = "same-origin"
    return response


@sensitive_post_parameters("password", "password2", "code")
@require_http_methods(["GET", "POST"])
def enrolment(request):
    token = request.session.get(ENROL_TOKEN, "")
    try:
        found = staff_services.enrolment_check(token=token)
    except account_services.TokenInvalid as exc:
        return render(
            request,
            "console/enrolment_invalid.html",
            {
                "title": _("Lien d’enrôlement invalide"),
                "expired": isinstance(exc, account_services.TokenExpired),
            },
            status=400,
        )
    staff = found.staff
    form = EnrolmentForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                staff_services.staff_enrol(
                    token=token,
                    password=form.cleaned_data["password"],
                    code=form.cleaned_data["code"],
                    ip=client_ip(request),
                )
            except account_services.WeakPassword as exc:
                from portal.accounts.passwords import rule_message

                for code in exc.rules:
                    form.add_error("password", rule_message(code))
            except account_services.InvalidCredentials:
                form.add_error(
                    "code",
                    _(
                        "Ce code ne correspond pas. Vérifiez l’heure de votre téléphone et réessayez."
                    ),
                )
            except account_services.TokenInvalid:
                return redirect("console:enrolment")
            else:
                request.session.pop(ENROL_TOKEN, None)
                messages.success(
                    request,
                    _("Votre accès est prêt. Connectez-vous avec votre mot de passe et un code."),
                )
                return redirect("console:login")
    secret = staff.totp_secret
    uri = totp.provisioning_uri(key_hex=secret, email=staff.email)
    response = render(
        request,
        "console/enrolment.html",
        {
            "title": _("Activer votre accès conseiller"),
            "form": form,
            "staff": staff,
            "qr_svg": totp.qr_svg(uri),
            "manual_key": totp.manual_key(secret),
        },
        status=status,
    )
    response["Referrer-Policy"] = "same-origin"
    add_never_cache_headers(response)
    return response


# --- console -------------------------------------------------------------------


@staff_required(perms.can_use_console)
def home(request):
    form = MemberSearchForm()
    blocks = []
    if perms.can_view_audit(request.staff):
        blocks = ConsoleBlock.objects.filter(
            lifted_at__isnull=True, member__cpam=request.staff.cpam
        ).select_related("member")
    return render(
        request,
        "console/home.html",
        {
            "title": _("Console conseiller"),
            "form": form,
            "can_search": perms.can_search_member(request.staff),
            "blocks": blocks,
        },
    )


@staff_required(perms.can_search_member)
@require_POST
def search(request):
    form = MemberSearchForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "console/home.html",
            {"title": _("Console conseiller"), "form": form, "can_search": True},
            status=400,
        )
    member = recovery.member_search(
        staff=request.staff, nir=form.cleaned_data["nir"], ip=client_ip(request)
    )
    if member is None:
        form.add_error("nir", _("Aucun assuré de votre caisse ne porte ce numéro."))
        return render(
            request,
            "console/home.html",
            {"title": _("Console conseiller"), "form": form, "can_search": True},
            status=404,
        )
    searched = request.session.get(SEARCHED, [])
    if member.pk not in searched:
        request.session[SEARCHED] = [*searched[-19:], member.pk]
    return redirect("console:member", member_id=member.pk)


def _member_in_session(request, member_id: int) -> Member:
    """Only a member found by exact NIR in this session can be opened: no browsing by id."""
    if member_id not in request.session.get(SEARCHED, []):
        raise Http404
    member = get_object_or_404(Member.objects.select_related("cpam"), pk=member_id)
    if not perms.can_act_on_member(request.staff, member):
        raise Http404
    return member


def _window(request, member):
    check_id = request.session.get(CHECKS, {}).get(str(member.pk))
    try:
        return recovery.check_window(staff=request.staff, member=member, check_id=check_id)
    except (recovery.NoWindow, recovery.MemberBlocked):
        return None


@staff_required(perms.can_search_member)
def member_view(request, member_id: int):
    member = _member_in_session(request, member_id)
    check = _window(request, member)
    account = Account.objects.filter(member=member).exclude(state=Account.State.DELETED).first()
    context = {
        "title": _("Assuré"),
        "member": member,
        "masked_nir": mask(member.nir),
        "blocked": recovery.member_blocked(member=member),
        "check": check,
        "check_form": IdentityCheckForm(),
        "delete_form": DeleteAccountForm(),
        "visit_form": VisitForm(),
    }
    if check:
        # Only after a passed check: what the advisor needs, never a stored value to read out.
        context.update(
            {
                "account_state": account.get_state_display()
                if account
                else _("aucun compte en ligne"),
                "has_account": account is not None and account.state == Account.State.ACTIVE,
                "deletable": account is not None,
                "masked_mobile": recovery.masked_mobile(account),
                "can_send_code": perms.can_send_recovery_code(request.staff, member),
                "can_visit": perms.can_record_visit(request.staff, member),
                "can_delete": perms.can_delete_account(request.staff, member),
            }
        )
    return render(request, "console/member.html", context)


@staff_required(perms.can_search_member)
@require_POST
def identity_check(request, member_id: int):
    member = _member_in_session(request, member_id)
    if not perms.can_check_identity(request.staff, member):
        raise PermissionDenied
    form = IdentityCheckForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Le formulaire de vérification contient une erreur de saisie."))
        return redirect("console:member", member_id=member.pk)
    try:
        check = recovery.identity_check_run(
            staff=request.staff, member=member, ip=client_ip(request), **form.cleaned_data
        )
    except recovery.MemberBlocked:
        messages.error(
            request,
            _(
                "Parcours bloqué pour cet assuré après 3 vérifications échouées. Un superviseur doit le débloquer."
            ),
        )
        return redirect("console:member", member_id=member.pk)
    if check.passed:
        request.session[CHECKS] = {**request.session.get(CHECKS, {}), str(member.pk): check.pk}
        messages.success(request, _("Identité vérifiée : vous pouvez agir pendant 15 minutes."))
    else:
        labels = {
            "birth_date": _("Date de naissance"),
            "postal_code": _("Code postal"),
            "first_name": _("Prénom"),
            "iban_last4": _("IBAN"),
        }
        wrong = [str(labels[key]) for key, ok in check.outcomes.items() if not ok]
        messages.error(
            request,
            ngettext(
                "Vérification échouée. Cette réponse ne correspond pas : %(fields)s.",
                "Vérification échouée. Ces réponses ne correspondent pas : %(fields)s.",
                len(wrong),
            )
            % {"fields": ", ".join(wrong)},
        )
    return redirect("console:member", member_id=member.pk)


def _action(request, member_id, permission, run, success):
    """Run an action on a member found in this session, if `permission(staff, member)` allows.

    A member outside the staff's CPAM is a 404 (not even confirmed to exist); a
    member the staff found but whose action their role may not do is a 403,
    decided before the form is looked at.
    """
    member = _member_in_session(request, member_id)
    if not permission(request.staff, member):
        raise PermissionDenied
    check_id = request.session.get(CHECKS, {}).get(str(member.pk))
    try:
        result = run(member, check_id)
    except recovery.NotAllowed:
        raise PermissionDenied from None
    except recovery.MemberBlocked:
        messages.error(request, _("Parcours bloqué pour cet assuré."))
    except recovery.NoWindow:
        messages.error(request, _("Vérifiez d’abord l’identité de l’assuré (valable 15 minutes)."))
    except recovery.NoAccount:
        messages.error(request, _("Cet assuré n’a pas de compte en ligne actif."))
    except recovery.NoMobile:
        messages.error(
            request,
            _(
                "Aucun mobile enregistré : proposez un rendez-vous à l’accueil ou la suppression du compte."
            ),
        )
    except account_services.Throttled:
        messages.error(request, _("Limite atteinte : 3 codes par jour pour cet assuré."))
    except SmsError:
        messages.error(
            request,
            _(
                "Envoi de SMS impossible vers ce numéro ou plafond journalier atteint. Proposez l’accueil ou la suppression du compte."
            ),
        )
    except ValueError:
        messages.error(request, _("Saisie incomplète."))
    else:
        return success(member, result)
    return redirect("console:member", member_id=member.pk)


@staff_required(perms.can_search_member)
@require_POST
def send_code(request, member_id: int):
    def run(member, check_id):
        return recovery.recovery_code_send(
            staff=request.staff, member=member, check_id=check_id, ip=client_ip(request)
        )

    def success(member, row):
        messages.success(
            request, _("Code envoyé par SMS au mobile enregistré. Il est valable 10 minutes.")
        )
        return redirect("console:member", member_id=member.pk)

    return _action(request, member_id, perms.can_send_recovery_code, run, success)


@staff_required(perms.can_search_member)
@require_POST
def delete_account(request, member_id: int):
    form = DeleteAccountForm(request.POST)

    def run(member, check_id):
        if not form.is_valid():
            raise ValueError("form")
        return recovery.account_delete(
            staff=request.staff,
            member=member,
            check_id=check_id,
            reason=form.cleaned_data["reason"],
            ip=client_ip(request),
        )

    def success(member, account):
        messages.success(request, _("Compte en ligne supprimé. L’assuré peut en créer un nouveau."))
        return redirect("console:member", member_id=member.pk)

    return _action(request, member_id, perms.can_delete_account, run, success)


@staff_required(perms.can_search_member)
@require_POST
def record_visit(request, member_id: int):
    form = VisitForm(request.POST)

    def run(member, check_id):
        if not form.is_valid():
            raise ValueError("form")
        recovery.visit_record(
            staff=request.staff,
            member=member,
            check_id=check_id,
            document_type=form.cleaned_data["document_type"],
            last_chars=form.cleaned_data["last_chars"],
            ip=client_ip(request),
        )
        return recovery.activation_code_issue(
            staff=request.staff, member=member, check_id=check_id, ip=client_ip(request)
        )

    def success(member, code):
        response = render(
            request,
            "console/slip.html",
            {
                "title": _("Code d’activation"),
                "member": member,
                "masked_nir": mask(member.nir),
                "code": code,
            },
        )
        add_never_cache_headers(response)
        return response

    return _action(request, member_id, perms.can_record_visit, run, success)


@staff_required(perms.can_view_audit)
@require_POST
def lift_block(request, block_id: int):
    block = get_object_or_404(
        ConsoleBlock.objects.select_related("member"), pk=block_id, lifted_at__isnull=True
    )
    try:
        recovery.block_lift(staff=request.staff, block=block, ip=client_ip(request))
    except recovery.NotAllowed:
        raise Http404 from None
    messages.success(request, _("Blocage levé."))
    return redirect("console:home")
