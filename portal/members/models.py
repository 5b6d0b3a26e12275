from django.db import models
from phonenumber_field.modelfields import PhoneNumberField


class Cpam(models.Model):
    """A local fund office (caisse primaire), e.g. `751` Paris."""

    code = models.CharField(max_length=3, unique=True)
    name = models.CharField(max_length=200)
    # The department whose public holidays apply (Alsace-Moselle and overseas
    # have their own) and the zone the office's opening hours are in.
    department = models.CharField(max_length=3, blank=True)
    time_zone = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name = "CPAM"

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def save(self, *args, **kwargs):
        if not self.department:
            self.department = department_of(self.code)
        if not self.time_zone:
            self.time_zone = OVERSEAS_TIME_ZONES.get(self.department, "Europe/Paris")
        super().save(*args, **kwargs)


OVERSEAS_TIME_ZONES = {
    "971": "America/Guadeloupe",
    "972": "America/Martinique",
    "973": "America/Cayenne",
    "974": "Indian/Reunion",
    "976": "Indian/Mayotte",
}


def department_of(cpam_code: str) -> str:
    """The department of a CPAM code: `751` → `75`, `974` → `974`."""
    return cpam_code if cpam_code.startswith("97") else cpam_code[:2]


class Member(models.Model):
    """An insured person in the fund's register (assuré). Outlives any online account."""

    class Sex(models.TextChoices):
        MALE = "1", "Homme"
        FEMALE = "2", "Femme"

    nir = models.CharField("NIR", max_length=15, unique=True)  # 13 + key
    birth_date = models.DateField()
    last_name = models.CharField(max_length=100)
    first_names = models.CharField(max_length=200)
    sex = models.CharField(max_length=1, choices=Sex.choices)
    email = models.EmailField(blank=True)
    mobile_phone = PhoneNumberField(blank=True)
    postal_address = models.CharField(max_length=300, blank=True)
    postal_code = models.CharField(max_length=5)
    iban = models.CharField(max_length=34)
    cpam = models.ForeignKey(Cpam, on_delete=models.PROTECT, related_name="members")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["nir"]

    def __str__(self) -> str:
        return f"{self.first_names} {self.last_name}"

    @property
    def nir13(self) -> str:
        return self.nir[:13]


class Beneficiary(models.Model):
    """A person covered through a member (ayant droit), e.g. a child under 18."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="beneficiaries")
    nir = models.CharField("NIR", max_length=15, blank=True)
    birth_date = models.DateField()
    last_name = models.CharField(max_length=100)
    first_names = models.CharField(max_length=200)

    class Meta:
        ordering = ["birth_date"]

    def __str__(self) -> str:
        return f"{self.first_names} {self.last_name}"
