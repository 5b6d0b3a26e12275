from django.shortcuts import redirect, render
from django.utils.translation import gettext as _


def home(request):
    if request.user.is_authenticated:
        return redirect("www:space")
    return render(request, "www/home.html", {"title": _("Accueil")})


def accessibility(request):
    return render(request, "www/accessibility.html", {"title": _("Déclaration d’accessibilité")})


def legal(request):
    return render(request, "www/legal.html", {"title": _("Mentions légales")})


def privacy(request):
    return render(request, "www/privacy.html", {"title": _("Données personnelles")})
