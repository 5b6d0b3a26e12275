import unicodedata

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.db.models import Q
from django.utils.crypto import salted_hmac
from phonenumber_field.modelfields import PhoneNumberField


def normalize_password(raw: str | None) -> str | None:
    """NFKC, so that the same password typed on two keyboards is the same password."""
    return None if raw is None else unicodedata.normalize("NFKC", raw)


class AccountManager(BaseUserManager):
    def get_by_natural_key(self, nir):
        return self.get(nir=nir)


class Account(AbstractBaseUser):
    """A member's online account (compte en ligne), the login identity.

    The login identifier is the 13-digit NIR. Deleting an account clears its
    login (so that a new account can be created) but never touches the member.
    State changes go through `portal.accounts.services`.
    """

    class State(models.TextChoices):
        PENDING = "pending", "En attente de confirmation"
        ACTIVE = "active", "Actif"
        DELETED = "deleted", "Supprimé"

    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="accounts")
    # NULL once the account is deleted, so that the member can create a new one
    # while the old row stays for the audit trail (NULLs do not collide in UNIQUE).
    nir = models.CharField("NIR (13)", max_length=13, unique=True, null=True)  # noqa: DJ001
    email = models.EmailField()
    mobile_phone = PhoneNumberField(blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # When the current email was proven to reach the member, and the address
    # it replaced: a freshly changed address does not receive reset links.
    email_confirmed_at = models.DateTimeField(null=True, blank=True)
    email_previous = models.EmailField(blank=True)
    # Bumped to end every session of the account ("log out of all devices"):
    # it is part of the session's authentication hash.
    session_epoch = models.PositiveIntegerField(default=0)
    # The "Nouveau paiement" email after a payment import (opt-out, on by default).
    notify_new_payments = models.BooleanField(default=True)
    # A declared communication need (deaf or hard-of-hearing member): the
    # preferred mode through the relay service (lsf, ttrp, lfpc), or empty.
    # It pre-selects the relay type when booking; notifications go by email
    # and SMS, never by a phone call.
    communication_mode = models.CharField(max_length=4, blank=True)

    USERNAME_FIELD = "nir"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    objects = AccountManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["member"],
                condition=~Q(state="deleted"),
                name="one_live_account_per_member",
            )
        ]

    def __str__(self) -> str:
        return f"account {self.pk} ({self.state})"

    @property
    def is_active(self) -> bool:  # used by Django's auth machinery
        return self.state == self.State.ACTIVE

    def _session_hash(self, secret=None) -> str:
        return salted_hmac(
            "portal.accounts.Account.session",
            f"{self.password}:{self.session_epoch}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()

    def get_session_auth_hash(self):
        """Sessions die when the password changes or the epoch is bumped."""
        return self._session_hash()

    def get_session_auth_fallback_hash(self):
        for secret in settings.SECRET_KEY_FALLBACKS:
            yield self._session_hash(secret)

    def set_password(self, raw_password):
        super().set_password(normalize_password(raw_password))

    def check_password(self, raw_password):
        return super().check_password(normalize_password(raw_password))


class Session(AbstractBaseSession):
    """Django's database session (`SESSION_ENGINE`), with the logged-in member's
    account as a column of its own, so that the session and its account are
    read in one query at every request (portal/accounts/sessions.py).

    `account` mirrors what the session's data says and is written with it;
    the data stays the reference (a session whose column disagrees reads its
    account apart). Staff sessions and anonymous ones have none.
    """

    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    @classmethod
    def get_session_store_class(cls):
        from .sessions import SessionStore

        return SessionStore


class AccountToken(models.Model):
    """A one-time link token, stored only as its SHA-256."""

    class Purpose(models.TextChoices):
        CONFIRM_EMAIL = "confirm_email", "Confirmation de l’adresse électronique"
        PASSWORD_RESET = "password_reset", "Réinitialisation du mot de passe"
        EMAIL_CHANGE = "email_change", "Changement d’adresse électronique"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="tokens")
    purpose = models.CharField(max_length=30, choices=Purpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    # For an email change: the new address the link confirms.
    target = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["account", "purpose"])]

    def __str__(self) -> str:
        return f"{self.purpose} token {self.pk} of account {self.account_id}"


class ApiToken(models.Model):
    """A bearer token of the API, opaque, stored only as its SHA-256, revocable."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"API token {self.pk} of account {self.account_id}"


class OneTimeCode(models.Model):
    """A short numeric one-time code, sent by SMS (or printed), stored only as a keyed hash.

    Generic on purpose: the mobile change uses 6 digits for 10 minutes, the
    assisted recovery will use 8 digits with its own lifetime. A code has few
    digits, so unlike the 256-bit link tokens a plain hash would fall to
    brute force from a copy of the table: `code_hash` is an HMAC keyed with
    SECRET_KEY and bound to the account and the purpose (`portal.accounts.codes`).
    Wrong tries are counted on the row, so they add up across requests and
    sessions; issuing a new code revokes the earlier ones of the same purpose.
    """

    class Purpose(models.TextChoices):
        MOBILE_CHANGE = "mobile_change", "Changement de téléphone mobile"
        RECOVERY_SMS = "recovery_sms", "Code de récupération envoyé par SMS (36 46)"
        DESK_ACTIVATION = "desk_activation", "Code d’activation remis à l’accueil"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="one_time_codes")
    purpose = models.CharField(max_length=30, choices=Purpose.choices)
    code_hash = models.CharField(max_length=64)
    # Where the code was sent (E.164 for an SMS), and for a channel change the
    # value that a right code confirms. Blank for a printed code.
    target = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["account", "purpose", "created_at"])]

    def __str__(self) -> str:
        return f"{self.purpose} code {self.pk} of account {self.account_id}"
