"""The portal's URLs plus Django's stock `PasswordResetView`, for `bench/reset.py` only.

The stock view is the reference the bench compares our reset request with:
it looks the account up by email, makes a token and sends the email through
EMAIL_BACKEND (SMTP in the bench) before answering.
"""

from django.contrib.auth.forms import PasswordResetForm, _unicode_ci_compare
from django.contrib.auth.views import PasswordResetDoneView, PasswordResetView
from django.urls import path

from bench.common import STOCK_RESET_PATH
from config import urls as portal_urls
from portal.accounts.models import Account


class StockResetForm(PasswordResetForm):
    """Django's form, except for the query: `Account.is_active` is a property over
    `state`, not a column, so the stock `filter(is_active=True)` cannot run."""

    def get_users(self, email):
        accounts = Account.objects.filter(email__iexact=email, state=Account.State.ACTIVE)
        # The rest is the stock policy (django.contrib.auth.forms, Django 5.2).
        return (
            account
            for account in accounts
            if account.has_usable_password() and _unicode_ci_compare(email, account.email)
        )


urlpatterns = [
    path(
        STOCK_RESET_PATH.lstrip("/"),
        PasswordResetView.as_view(
            form_class=StockResetForm,
            template_name="bench/stock_reset/form.html",
            email_template_name="bench/stock_reset/email.txt",
            subject_template_name="bench/stock_reset/subject.txt",
            success_url=f"{STOCK_RESET_PATH}done/",
        ),
        name="bench_stock_reset",
    ),
    path(
        f"{STOCK_RESET_PATH.lstrip('/')}done/",
        PasswordResetDoneView.as_view(template_name="bench/stock_reset/done.html"),
        name="bench_stock_reset_done",
    ),
    *portal_urls.urlpatterns,
]

handler400 = portal_urls.handler400
handler403 = portal_urls.handler403
handler404 = portal_urls.handler404
handler500 = portal_urls.handler500
