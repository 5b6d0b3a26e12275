"""Payments fed by the fund's payment system: reimbursements and daily allowances.

Rows are written only by the imports (`portal.payments.imports`), keyed by
the feed's own ids so that re-importing a file changes nothing.
"""

from django.db import models

AMOUNT = {"max_digits": 12, "decimal_places": 2}


class ReimbursementLine(models.Model):
    """One line of a statement (ligne de décompte): care paid back, or paid to the professional."""

    class Payee(models.TextChoices):
        MEMBER = "member", "Vous"
        PROFESSIONAL = "professional", "Le professionnel de santé (tiers payant)"

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "En cours"
        PAID = "paid", "Payé"

    # Unique through Meta.constraints: `unique=True` would add, on PostgreSQL, a
    # second index (for LIKE queries, which nothing runs) that every import maintains.
    line_id = models.CharField(max_length=64)
    # No index of its own: the member's indexes below start with it (every read
    # filters on the member first), and each index costs every import.
    member = models.ForeignKey(
        "members.Member",
        on_delete=models.PROTECT,
        related_name="reimbursement_lines",
        db_index=False,
    )
    # Empty for the member; else the beneficiary (ayant droit) the care was for.
    # Indexed where set only (reimb_beneficiary), for the checks of PROTECT.
    beneficiary = models.ForeignKey(
        "members.Beneficiary",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reimbursement_lines",
        db_index=False,
    )
    care_date = models.DateField()
    act_code = models.CharField(max_length=20)
    act_label = models.CharField(max_length=200)
    professional = models.CharField(max_length=200)
    amount_paid = models.DecimalField(**AMOUNT)
    base_amount = models.DecimalField(**AMOUNT)
    rate = models.DecimalField(max_digits=5, decimal_places=2)  # percent
    gross_reimbursed = models.DecimalField(**AMOUNT)
    participation_forfaitaire = models.DecimalField(**AMOUNT)
    franchise = models.DecimalField(**AMOUNT)
    net_reimbursed = models.DecimalField(**AMOUNT)
    payee = models.CharField(max_length=12, choices=Payee.choices)
    payment_date = models.DateField(null=True, blank=True)
    payment_reference = models.CharField(max_length=64, blank=True)
    transmitted_to_complementary = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=Status.choices)
    imported_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # Keyset pagination of "Mes paiements", newest payment first.
            models.Index(fields=["member", "-payment_date", "-id"], name="reimb_member_paydate"),
            models.Index(fields=["member", "care_date"], name="reimb_member_care"),
            # Deleting a beneficiary looks for its lines (PROTECT); most lines
            # are the member's own (NULL), which this index leaves out.
            models.Index(
                fields=["beneficiary"],
                name="reimb_beneficiary",
                condition=models.Q(beneficiary__isnull=False),
            ),
        ]
        constraints = [
            # The feed's key: imports upsert ON CONFLICT (line_id).
            models.UniqueConstraint(fields=["line_id"], name="reimb_line_id_unique"),
        ]

    def __str__(self) -> str:
        return f"line {self.line_id}"


class WorkStoppage(models.Model):
    """A work stoppage (arrêt de travail): sick leave, work accident, maternity or paternity."""

    class Kind(models.TextChoices):
        SICKNESS = "maladie", "Maladie"
        WORK_ACCIDENT = "at_mp", "Accident du travail ou maladie professionnelle"
        MATERNITY = "maternite", "Maternité"
        PATERNITY = "paternite", "Paternité"

    # Waiting days (délai de carence) by kind: 3 for sickness, none otherwise.
    WAITING_DAYS = {"maladie": 3, "at_mp": 0, "maternite": 0, "paternite": 0}

    stoppage_id = models.CharField(max_length=64, unique=True)
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="work_stoppages"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    start = models.DateField()
    end = models.DateField(null=True, blank=True)  # open while empty
    waiting_days = models.PositiveSmallIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["member", "-start"], name="stoppage_member_start")]

    def __str__(self) -> str:
        return f"stoppage {self.stoppage_id}"


class AllowancePayment(models.Model):
    """A payment of daily allowances (indemnités journalières) for a period of a stoppage."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "En cours"
        PAID = "paid", "Payé"

    payment_id = models.CharField(max_length=64, unique=True)
    stoppage = models.ForeignKey(WorkStoppage, on_delete=models.PROTECT, related_name="payments")
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="allowance_payments"
    )
    period_start = models.DateField()
    period_end = models.DateField()
    days = models.PositiveSmallIntegerField()
    daily_gross = models.DecimalField(**AMOUNT)
    gross = models.DecimalField(**AMOUNT)
    csg = models.DecimalField(**AMOUNT)
    crds = models.DecimalField(**AMOUNT)
    net = models.DecimalField(**AMOUNT)
    payment_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices)
    imported_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["member", "-payment_date", "-id"], name="allowance_member_paydate")
        ]

    def __str__(self) -> str:
        return f"allowance payment {self.payment_id}"


class NewPaymentNotice(models.Model):
    """New payments of a member that the "Nouveau paiement" email has not announced yet.

    Written by an import in the transaction of the batch that created the
    payments (or moved them to paid), and deleted in the transaction that
    queues the email: a crash in between leaves the notice for the next
    import of the same kind, so the email is neither lost nor sent twice.
    One row per member and kind, however many lines or batches.
    """

    class Kind(models.TextChoices):
        REIMBURSEMENT = "reimbursement", "Remboursement de soins"
        ALLOWANCE = "allowance", "Indemnités journalières"

    member = models.ForeignKey("members.Member", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=15, choices=Kind.choices)
    payments = models.PositiveIntegerField()
    net_total = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member", "kind"], name="new_payment_notice_once")
        ]

    def __str__(self) -> str:
        return f"{self.payments} new {self.kind} payment(s) of member {self.member_id}"
