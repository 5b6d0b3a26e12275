from django.db import models


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
    # TOTP (RFC 6238) secret, hex; confirmed once the person proved their app has it.
    totp_key = models.CharField(max_length=80, blank=True)
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
