from django.urls import path

from .views import auth, demo, pages, signup, space

app_name = "www"

urlpatterns = [
    path("", pages.home, name="home"),
    path("connexion/", auth.login_view, name="login"),
    path("deconnexion/", auth.logout_view, name="logout"),
    path("compte/creer/", signup.identity, name="signup"),
    path("compte/creer/identifiants/", signup.credentials, name="signup_credentials"),
    path("compte/creer/envoye/", signup.sent, name="signup_sent"),
    path("compte/confirmer/", signup.confirm, name="signup_confirm"),
    path("compte/confirmer/<str:token>", signup.confirm_link, name="signup_confirm_link"),
    path("mon-espace/", space.home, name="space"),
    path("accessibilite/", pages.accessibility, name="accessibility"),
    path("mentions-legales/", pages.legal, name="legal"),
    path("donnees-personnelles/", pages.privacy, name="privacy"),
    path("demo/boite-mail/", demo.mailbox, name="demo_mailbox"),
    path("demo/boite-mail/<int:message_id>/", demo.message, name="demo_message"),
]
