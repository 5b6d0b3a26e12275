from django.shortcuts import render
from django.utils.translation import gettext as _


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
