from django.urls import path

from .views import codes, reset

app_name = "reset"

urlpatterns = [
    path("", reset.request_view, name="request"),
    path("envoye/", reset.sent, name="sent"),
    path("nouveau-mot-de-passe/", reset.new_password, name="new_password"),
    path("code-sms", codes.sms_code, name="sms_code"),
    path("code-sms/nouveau-mot-de-passe/", codes.sms_password, name="sms_password"),
    path("code-activation", codes.activation_code, name="activation_code"),
    path(
        "code-activation/nouveau-mot-de-passe/",
        codes.activation_password,
        name="activation_password",
    ),
    # Last: any other segment is a reset token.
    path("<str:token>", reset.link, name="link"),
]
