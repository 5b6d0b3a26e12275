from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "portal.core"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
