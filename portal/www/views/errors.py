from django.shortcuts import render


def _error(request, status: int, title: str, text: str):
    return render(request, "www/error.html", {"title": title, "text": text}, status=status)


def bad_request(request, exception=None):
    return _error(request, 400, "Requête incorrecte", "La demande n’a pas pu être comprise.")


def permission_denied(request, exception=None):
    return _error(request, 403, "Accès refusé", "Vous n’avez pas accès à cette page.")


def page_not_found(request, exception=None):
    return _error(
        request, 404, "Page non trouvée", "La page que vous cherchez est introuvable. Vérifiez l’adresse."
    )


def server_error(request):
    return _error(
        request, 500, "Erreur inattendue", "Désolé, le service rencontre un problème. Réessayez plus tard."
    )


def csrf_failure(request, reason=""):
    return _error(
        request,
        403,
        "Session expirée",
        "Le formulaire a expiré ou a été envoyé depuis un autre site. Rechargez la page et recommencez.",
    )
