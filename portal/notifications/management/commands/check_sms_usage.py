"""Alert the supervisors when fewer than half of the SMS codes of the last 24 h were used.

Meant to run periodically (every hour, say): the alert goes out at most once a day.
"""

from django.core.management.base import BaseCommand

from portal.notifications.services import sms_code_usage_alert

OUTCOMES = {
    "alerted": "alert sent to the supervisors",
    "already_alerted": "low usage, alert already sent in the last 24 h",
    "too_few_codes": "too few settled codes to judge",
    "ok": "usage normal",
}


class Command(BaseCommand):
    help = "Check that SMS codes get used; alert the supervisors (once a day) if not."

    def handle(self, *args, **options):
        result = sms_code_usage_alert()
        ratio = "-" if result["ratio"] is None else f"{result['ratio']:.0%}"
        self.stdout.write(
            f"SMS codes in the last 24 h: {result['sent']} sent, {result['used']} used, "
            f"{result['pending']} still pending, ratio {ratio}: {OUTCOMES[result['outcome']]}."
        )
