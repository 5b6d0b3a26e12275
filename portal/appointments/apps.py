from django.apps import AppConfig


class AppointmentsConfig(AppConfig):
    name = "portal.appointments"

    def ready(self):
        from . import signals

        signals.connect()
