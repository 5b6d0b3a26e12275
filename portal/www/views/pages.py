from django.shortcuts import redirect, render


def home(request):
    if request.user.is_authenticated:
        return redirect("www:space")
    return render(request, "www/home.html", {"title": "Accueil"})


def accessibility(request):
    return render(request, "www/accessibility.html", {"title": "Déclaration d’accessibilité"})


def legal(request):
    return render(request, "www/legal.html", {"title": "Mentions légales"})


def privacy(request):
    return render(request, "www/privacy.html", {"title": "Données personnelles"})
