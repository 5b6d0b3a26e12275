import logging

from django.db import models

from portal.core import sealing

logger = logging.getLogger(__name__)

# What the staff's TOTP secrets are sealed for (bound into the encryption).
TOTP_SEALING = "staff totp"


class Staff(models.Model):
    """A person of the fund who uses the back office. Separate from members' accounts.

    Logs in with email + password + TOTP (mandatory, enrolled through a
    one-time link). State changes go through `portal.staff.services`.
    """

    class Role(models.TextChoices):
        PHONE_ADVISOR = "phone_advisor", "Téléconseiller"
        FRONT_DESK = "front_desk", "Agent d’accueil"
        SUPERVISOR = "supervisor", "Superviseur"

    email = models.EmailField(unique=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices)
    cpam = models.ForeignKey("members.Cpam", on_delete=models.PROTECT, related_name="staff")
    password = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    # TOTP (RFC 6238) secret, encrypted (`totp_secret` reads it, `totp_secret_set`
    # writes it); confirmed once the person proved their app has it.
    totp_key = models.CharField(max_length=200, blank=True)
    totp_confirmed_at = models.DateTimeField(null=True, blank=True)
    # Last accepted time step: a code is never accepted twice (replay).
    totp_last_t = models.BigIntegerField(default=-1)
    session_epoch = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["email"]
        verbose_name_plural = "staff"

    def __str__(self) -> str:
        return f"{self.email} ({self.role}, CPAM {self.cpam_id})"

    @property
    def actor(self) -> str:
        return f"staff:{self.pk}"

    @property
    def totp_secret(self) -> str:
        """The TOTP secret in hex, decrypted ("" when none, or when it cannot be
        decrypted: logged, and then no code matches)."""
        if not self.totp_key:
            return ""
        try:
            return sealing.unseal(self.totp_key, purpose=TOTP_SEALING)
        except sealing.UnsealError as error:
            logger.error(
                "TOTP secret of staff %s cannot be decrypted (%s): check TOTP_ENCRYPTION_KEYS",
                self.pk,
                error,
            )
            return ""

    def totp_secret_set(self, key_hex: str) -> None:
        """Encrypt and keep `key_hex` (the caller saves `totp_key`)."""
        self.totp_key = sealing.seal(key_hex, purpose=TOTP_SEALING) if key_hex else ""

    @property
    def enrolled(self) -> bool:
        return bool(self.password and self.totp_confirmed_at)


class StaffEnrolment(models.Model):
    """A one-time enrolment link (password + TOTP), stored only as its SHA-256."""

    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="enrolments")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"enrolment {self.pk} of staff {self.staff_id}"
