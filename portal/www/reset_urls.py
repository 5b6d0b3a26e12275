from django.urls import path

from .views import reset

app_name = "reset"

urlpatterns = [
    path("", reset.request_view, name="request"),
    path("envoye/", reset.sent, name="sent"),
    path("nouveau-mot-de-passe/", reset.new_password, name="new_password"),
    path("<str:token>", reset.link, name="link"),
]
