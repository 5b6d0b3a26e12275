import logging
import sys

from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

# How long a client is asked to wait when the database is unreachable: a
# restart or a failover takes seconds (docs/operations.md, "Faults").
RETRY_AFTER_SECONDS = 30


def _error(request, status: int, title: str, text: str):
    return render(request, "www/error.html", {"title": title, "text": text}, status=status)


def bad_request(request, exception=None):
    return _error(request, 400, _("Requête incorrecte"), _("La demande n’a pas pu être comprise."))


def permission_denied(request, exception=None):
    return _error(request, 403, _("Accès refusé"), _("Vous n’avez pas accès à cette page."))


def page_not_found(request, exception=None):
    return _error(
        request,
        404,
        _("Page non trouvée"),
        _("La page que vous cherchez est introuvable. Vérifiez l’adresse."),
    )


def server_error(request):
    # Django calls this view while handling the exception, which is still current.
    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        return service_unavailable(request)
    return _error(
        request,
        500,
        _("Erreur inattendue"),
        _("Désolé, le service rencontre un problème. Réessayez plus tard."),
    )


def csrf_failure(request, reason=""):
    return _error(
        request,
        403,
        _("Session expirée"),
        _(
            "Le formulaire a expiré ou a été envoyé depuis un autre site. Rechargez la page et "
            "recommencez."
        ),
    )


def service_unavailable(request):
    """503 while the database is unreachable (restarted, failing over), with
    Retry-After; the API answers `{"error": "service_unavailable"}`.

    Nothing on this page may need the database: the visitor is shown as
    anonymous, and if the page cannot be rendered all the same, a plain one.
    """
    request.user = AnonymousUser()
    request.staff = None
    title = _("Service momentanément indisponible")
    text = _(
        "Le service est momentanément indisponible. Réessayez dans quelques minutes : "
        "ce que vous avez déjà enregistré n’est pas perdu."
    )
    try:
        response = _error(request, 503, title, text)
    except Exception:  # noqa: BLE001 (the fallback of the fallback)
        logger.exception("the service-unavailable page could not be rendered")
        response = HttpResponse(
            f"{title}. {text}", status=503, content_type="text/plain; charset=utf-8"
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
