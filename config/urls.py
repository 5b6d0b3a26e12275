from django.urls import include, path

from portal.api.v1 import api
from portal.www import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/v1/", api.urls),
    path("mot-de-passe-oublie/", include("portal.www.reset_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("conseiller/", include("portal.console.urls")),
    path("", include("portal.www.urls")),
]

handler400 = "portal.www.views.errors.bad_request"
handler403 = "portal.www.views.errors.permission_denied"
handler404 = "portal.www.views.errors.page_not_found"
handler500 = "portal.www.views.errors.server_error"
