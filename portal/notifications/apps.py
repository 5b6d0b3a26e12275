from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "portal.notifications"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
