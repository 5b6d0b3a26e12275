"""Appointments with an advisor of the member's CPAM (Mon agenda).

Times are stored in UTC and computed in the office's zone (`Cpam.time_zone`);
weekly opening ranges are wall-clock times, so a 09:00 range stays 09:00 on
the days the clocks change. No advisor is ever booked twice: every booked
appointment holds one `AdvisorTimeLock` row per 5-minute cell it covers, and
the database refuses a second row for the same advisor and cell.
"""

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

CELL_MINUTES = 5


class Channel(models.TextChoices):
    PHONE = "phone", _("Entretien téléphonique")
    ON_SITE = "on_site", _("Sur place")
    RELAY = "relay", _("Entretien en visio avec interprétation / transcription")


class CommunicationMode(models.TextChoices):
    """How a deaf or hard-of-hearing member talks with the advisor, through the relay service."""

    LSF = "lsf", _("Langue des signes française (LSF)")
    TTRP = "ttrp", _("Transcription en temps réel de la parole (TTRP)")
    LFPC = "lfpc", _("Langue française parlée complétée (LfPC)")


class Site(models.Model):
    """A reception site of a CPAM (accueil), where on-site appointments take place."""

    cpam = models.ForeignKey("members.Cpam", on_delete=models.PROTECT, related_name="sites")
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=300)
    postal_code = models.CharField(max_length=5)
    city = models.CharField(max_length=100)
    opening_hours = models.CharField(max_length=300, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["cpam", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def full_address(self) -> str:
        return f"{self.address}, {self.postal_code} {self.city}"


def duration_validator(value: int) -> None:
    from django.core.exceptions import ValidationError

    if value % CELL_MINUTES:
        raise ValidationError(f"La durée doit être un multiple de {CELL_MINUTES} minutes.")


class Motive(models.Model):
    """A reason for an appointment, from the fund's list (motif)."""

    code = models.SlugField(max_length=40, unique=True)
    label = models.CharField(max_length=200)
    description = models.TextField()
    phone = models.BooleanField("entretien téléphonique", default=True)
    on_site = models.BooleanField("sur place", default=True)
    relay = models.BooleanField("en visio avec interprétation / transcription", default=True)
    duration_minutes = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(15), MaxValueValidator(30), duration_validator],
    )
    # The first bookable day is this many working days after today.
    min_notice_working_days = models.PositiveSmallIntegerField(default=1)
    horizon_days = models.PositiveSmallIntegerField(default=42)
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "label"]
        constraints = [
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=15) & Q(duration_minutes__lte=30),
                name="motive_duration_15_30",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def channels(self) -> list[str]:
        offered = (
            (Channel.PHONE, self.phone),
            (Channel.ON_SITE, self.on_site),
            (Channel.RELAY, self.relay),
        )
        return [channel for channel, on in offered if on]


class Advisor(models.Model):
    """The booking profile of a staff member who holds appointments."""

    staff = models.OneToOneField("staff.Staff", on_delete=models.CASCADE, related_name="advisor")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="advisors")
    motives = models.ManyToManyField(Motive, related_name="advisors")
    phone = models.BooleanField("entretiens téléphoniques", default=True)
    on_site = models.BooleanField("entretiens sur place", default=True)
    relay = models.BooleanField("entretiens en visio avec le service relais", default=False)

    class Meta:
        ordering = ["staff__last_name", "staff__first_name"]

    def __str__(self) -> str:
        return f"{self.staff.first_name} {self.staff.last_name}".strip() or self.staff.email

    @property
    def cpam_id(self) -> int:
        return self.staff.cpam_id


class OpeningRange(models.Model):
    """A weekly range when an advisor takes appointments, in the office's wall-clock time."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("lundi")
        TUESDAY = 1, _("mardi")
        WEDNESDAY = 2, _("mercredi")
        THURSDAY = 3, _("jeudi")
        FRIDAY = 4, _("vendredi")
        SATURDAY = 5, _("samedi")
        SUNDAY = 6, _("dimanche")

    advisor = models.ForeignKey(Advisor, on_delete=models.CASCADE, related_name="ranges")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start_time = models.TimeField()
    end_time = models.TimeField()
    # Blank: every channel the advisor serves.
    channel = models.CharField(max_length=10, choices=Channel.choices, blank=True)
    valid_from = models.DateField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["advisor", "weekday", "start_time"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_time__gt=models.F("start_time")), name="range_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start_time:%H:%M}–{self.end_time:%H:%M}"


class Absence(models.Model):
    """A period when an advisor takes no appointment (leave, training…)."""

    advisor = models.ForeignKey(Advisor, on_delete=models.CASCADE, related_name="absences")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["advisor", "ends_at"], name="absence_advisor_end")]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="absence_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"absence {self.pk} of advisor {self.advisor_id}"


class RelayProfessional(models.Model):
    """An interpreter (LSF), a transcriber (TTRP) or a coder (LfPC) of the relay service.

    Their weekly ranges are in the relay service's time (Europe/Paris) and
    are further bounded by the service's opening hours (`RELAY_SERVICE_HOURS`).
    """

    name = models.CharField(max_length=200)
    lsf = models.BooleanField("LSF", default=False)
    ttrp = models.BooleanField("TTRP", default=False)
    lfpc = models.BooleanField("LfPC", default=False)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def modes(self) -> list[str]:
        return [mode for mode in CommunicationMode.values if getattr(self, mode)]


class RelayRange(models.Model):
    professional = models.ForeignKey(
        RelayProfessional, on_delete=models.CASCADE, related_name="ranges"
    )
    weekday = models.PositiveSmallIntegerField(choices=OpeningRange.Weekday.choices)
    start_time = models.TimeField()
    end_time = models.TimeField()

    class Meta:
        ordering = ["professional", "weekday", "start_time"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_time__gt=models.F("start_time")), name="relay_range_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.professional} {self.weekday} {self.start_time:%H:%M}–{self.end_time:%H:%M}"


class Appointment(models.Model):
    class Status(models.TextChoices):
        BOOKED = "booked", _("Confirmé")
        DONE = "done", _("Effectué")
        NO_SHOW = "no_show", _("Absent ou sans réponse")
        CANCELLED_BY_MEMBER = "cancelled_by_member", _("Annulé par l’assuré")
        CANCELLED_BY_FUND = "cancelled_by_fund", _("Annulé par la caisse")

    # What members, the API and the .ics see: never the sequential key.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="appointments"
    )
    motive = models.ForeignKey(Motive, on_delete=models.PROTECT, related_name="appointments")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    advisor = models.ForeignKey(Advisor, on_delete=models.PROTECT, related_name="appointments")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="appointments")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.BOOKED)
    message = models.CharField(max_length=500, blank=True)
    # Relay appointments: the mode, the professional booked with the advisor,
    # and the video-call link from the relay provider (empty until it answers).
    communication_mode = models.CharField(
        max_length=4, choices=CommunicationMode.choices, blank=True
    )
    relay_professional = models.ForeignKey(
        RelayProfessional,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="appointments",
    )
    video_url = models.URLField(max_length=500, blank=True)
    # Bumped at each reschedule: the .ics SEQUENCE, and how a queued reminder
    # knows the appointment moved since.
    sequence = models.PositiveIntegerField(default=0)
    reminded_sequence = models.IntegerField(default=-1)
    cancel_reason = models.CharField(max_length=300, blank=True)
    outcome_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["starts_at"]
        indexes = [
            models.Index(fields=["advisor", "starts_at"], name="appointment_advisor_start"),
            models.Index(fields=["member", "starts_at"], name="appointment_member_start"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="appointment_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"appointment {self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.BOOKED


class AdvisorTimeLock(models.Model):
    """One 5-minute cell of an advisor's time held by a booked appointment.

    The unique constraint is what makes double booking impossible, whatever
    the concurrency: two appointments that overlap share at least one cell.
    """

    advisor = models.ForeignKey(Advisor, on_delete=models.CASCADE, related_name="+")
    cell = models.DateTimeField()
    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="locks")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["advisor", "cell"], name="one_appointment_per_advisor_cell"
            ),
        ]

    def __str__(self) -> str:
        return f"advisor {self.advisor_id} at {self.cell:%Y-%m-%d %H:%M}"


class RelayTimeLock(models.Model):
    """One 5-minute cell of a relay professional's time, like `AdvisorTimeLock`."""

    professional = models.ForeignKey(RelayProfessional, on_delete=models.CASCADE, related_name="+")
    cell = models.DateTimeField()
    appointment = models.ForeignKey(
        Appointment, on_delete=models.CASCADE, related_name="relay_locks"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["professional", "cell"], name="one_appointment_per_relay_cell"
            ),
        ]

    def __str__(self) -> str:
        return f"relay {self.professional_id} at {self.cell:%Y-%m-%d %H:%M}"
