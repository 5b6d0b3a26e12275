"""`manage.py import_reimbursements`: validation, idempotence, updates.

On SQLite through the ORM path, on PostgreSQL (`make test-postgres`) through the bulk path.
"""

import io
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from portal.audit.models import AuditEntry
from portal.core.feeds import FeedRow
from portal.payments import imports
from portal.payments.models import ReimbursementLine

from .helpers import (
    NIR_A,
    NIR_B,
    NIR_CHILD,
    NIR_UNKNOWN,
    TODAY,
    reimbursement,
    reimbursements_feed,
    run,
)


def run_import(path, *args):
    return run("import_reimbursements", path, *args)


def test_valid_lines_are_imported(tmp_path, paul):
    path = reimbursements_feed(
        tmp_path,
        [
            reimbursement(line_id="L1"),
            reimbursement(
                line_id="L2",
                beneficiary_nir=" ".join([NIR_CHILD[:1], NIR_CHILD[1:5], NIR_CHILD[5:]]),
                act_code="PH7",
                act_label="Médicaments remboursés à 65 %",
                professional="Pharmacie du Marché",
                amount_paid="12.40",
                base_amount="12.40",
                rate="65",
                gross_reimbursed="8.06",
                participation_forfaitaire="0.00",
                net_reimbursed="8.06",
                payee="professional",
                transmitted_to_complementary="no",
                status="in_progress",
                payment_date="",
                payment_reference="",
            ),
            # The member's own NIR as beneficiary: the member.
            reimbursement(line_id="L3", beneficiary_nir=NIR_A),
        ],
    )

    result = run_import(path)

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.counts == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "emails": 1,
    }
    consultation = ReimbursementLine.objects.get(line_id="L1")
    assert consultation.member == paul
    assert consultation.beneficiary is None
    assert consultation.care_date == date(2026, 3, 2)
    assert (consultation.base_amount, consultation.rate) == (Decimal("30.00"), Decimal("70"))
    assert consultation.gross_reimbursed == Decimal("21.00")
    assert consultation.participation_forfaitaire == Decimal("2.00")
    assert consultation.net_reimbursed == Decimal("19.00")
    assert consultation.payee == ReimbursementLine.Payee.MEMBER
    assert consultation.payment_date == date(2026, 3, 5)
    assert consultation.payment_reference == "VIR20260305A"
    assert consultation.transmitted_to_complementary is True
    assert consultation.status == ReimbursementLine.Status.PAID
    medicine = ReimbursementLine.objects.get(line_id="L2")
    assert medicine.beneficiary == paul.beneficiaries.get()
    assert medicine.payee == ReimbursementLine.Payee.PROFESSIONAL
    assert medicine.payment_date is None
    assert medicine.transmitted_to_complementary is False
    assert ReimbursementLine.objects.get(line_id="L3").beneficiary is None


def test_bad_lines_are_reported_by_line_and_field_and_good_lines_kept(tmp_path, paul):
    path = reimbursements_feed(
        tmp_path,
        [
            reimbursement(line_id="L1"),
            reimbursement(line_id="L2", net_reimbursed="21.00"),
            "",
            reimbursement(
                line_id="L3",
                nir=NIR_UNKNOWN,
                care_date="2026-03-17",
                amount_paid="30,00",
                rate="170",
                payee="moi",
            ),
            reimbursement(line_id="L4"),
            "L5,too,few,columns",
        ],
    )

    result = run_import(path)

    assert result.exit_code == 1
    assert result.errors == [
        "line 3: net_reimbursed: différent de gross_reimbursed − participation_forfaitaire"
        " − franchise (à 1 centime près)",
        "line 5: nir: assuré inconnu",
        "line 5: care_date: date dans le futur",
        "line 5: amount_paid: montant en euros attendu, avec un point et 2 décimales (ex. 12.50)",
        "line 5: rate: taux en pourcentage attendu, de 0 à 100 (ex. 70 ou 65.5)",
        "line 5: payee: member ou professional attendu",
        "line 7: row: 4 colonnes au lieu de 19",
    ]
    assert result.counts["created"] == 2
    assert result.counts["rejected"] == 3
    assert set(ReimbursementLine.objects.values_list("line_id", flat=True)) == {"L1", "L4"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"line_id": ""}, "line_id: obligatoire"),
        ({"line_id": "L 1"}, "line_id: identifiant attendu"),
        ({"line_id": "L" * 65}, "line_id: identifiant attendu"),
        ({"nir": NIR_A[:13] + "00"}, "nir: clé incorrecte"),
        ({"nir": NIR_A[:13]}, "nir: 13 chiffres et une clé de 2 chiffres attendus"),
        ({"nir": NIR_UNKNOWN}, "nir: assuré inconnu"),
        ({"beneficiary_nir": NIR_B}, "beneficiary_nir: ayant droit inconnu pour cet assuré"),
        ({"beneficiary_nir": NIR_CHILD[:13] + "00"}, "beneficiary_nir: clé incorrecte"),
        ({"care_date": ""}, "care_date: obligatoire"),
        ({"care_date": "02/03/2026"}, "care_date: date AAAA-MM-JJ attendue"),
        ({"care_date": "2026-02-30"}, "care_date: date inexistante"),
        (
            {"care_date": "2026-03-17", "payment_date": "", "status": "in_progress"},
            "care_date: date dans le futur",
        ),
        ({"act_code": ""}, "act_code: obligatoire"),
        ({"act_label": "  "}, "act_label: obligatoire"),
        ({"professional": "P" * 201}, "professional: 200 caractères au plus"),
        ({"professional": "Dr\tLefèvre"}, "professional: caractère de contrôle interdit"),
        ({"amount_paid": ""}, "amount_paid: obligatoire"),
        ({"amount_paid": "30"}, "amount_paid: montant en euros attendu"),
        ({"amount_paid": "30.5"}, "amount_paid: montant en euros attendu"),
        ({"amount_paid": "30.000"}, "amount_paid: montant en euros attendu"),
        ({"amount_paid": "-30.00"}, "amount_paid: montant négatif interdit"),
        ({"amount_paid": "1e3"}, "amount_paid: montant en euros attendu"),
        ({"rate": "-70"}, "rate: taux en pourcentage attendu"),
        ({"rate": "70,5"}, "rate: taux en pourcentage attendu"),
        ({"base_amount": "31.00"}, "gross_reimbursed: différent de base_amount × rate / 100"),
        ({"rate": "65"}, "gross_reimbursed: différent de base_amount × rate / 100"),
        (
            {"gross_reimbursed": "21.02", "net_reimbursed": "19.02"},
            "gross_reimbursed: différent de base_amount × rate / 100",
        ),
        ({"franchise": "1.00"}, "net_reimbursed: différent de gross_reimbursed"),
        ({"participation_forfaitaire": "0.00"}, "net_reimbursed: différent de gross_reimbursed"),
        ({"participation_forfaitaire": "-2.00"}, "participation_forfaitaire: montant négatif"),
        ({"payee": "Member"}, "payee: member ou professional attendu"),
        ({"payment_date": "2026-03-01"}, "payment_date: antérieure à care_date"),
        ({"payment_date": ""}, "payment_date: obligatoire quand status vaut paid"),
        ({"payment_date": "2026-03-17"}, "payment_date: date dans le futur pour un paiement"),
        ({"payment_reference": ""}, "payment_reference: obligatoire quand status vaut paid"),
        ({"transmitted_to_complementary": "oui"}, "transmitted_to_complementary: yes ou no"),
        ({"status": "done"}, "status: in_progress ou paid attendu"),
    ],
)
def test_each_rule_is_reported(tmp_path, paul, values, expected):
    path = reimbursements_feed(tmp_path, [reimbursement(line_id="GOOD"), reimbursement(**values)])

    result = run_import(path)

    assert result.exit_code == 1
    assert len(result.errors) == 1, result.errors
    assert result.errors[0].startswith(f"line 3: {expected}")
    assert list(ReimbursementLine.objects.values_list("line_id", flat=True)) == ["GOOD"]


@pytest.mark.parametrize(
    "values",
    [
        # Within a cent: 12.34 × 65 % = 8.021, sent as 8.03.
        {
            "base_amount": "12.34",
            "rate": "65",
            "gross_reimbursed": "8.03",
            "net_reimbursed": "6.03",
        },
        {"net_reimbursed": "18.99"},
        {"rate": "70.00"},
        # An in-progress line, with or without its planned payment date.
        {"status": "in_progress", "payment_date": "", "payment_reference": ""},
        {"status": "in_progress", "payment_date": "2026-03-20", "payment_reference": ""},
        # Deductions may eat the whole amount.
        {"participation_forfaitaire": "21.00", "net_reimbursed": "0.00"},
        {"care_date": TODAY.isoformat(), "payment_date": TODAY.isoformat()},
    ],
)
def test_accepted_edge_cases(tmp_path, paul, values):
    result = run_import(reimbursements_feed(tmp_path, [reimbursement(**values)]))

    assert result.exit_code == 0, result.stderr


def test_a_line_id_twice_in_the_file_is_rejected_after_the_first(tmp_path, paul):
    path = reimbursements_feed(
        tmp_path,
        [
            reimbursement(line_id="L1"),
            reimbursement(line_id="L2"),
            reimbursement(line_id="L1", net_reimbursed="18.00"),
            reimbursement(line_id="L1", rate="x"),
        ],
    )

    result = run_import(path, "--batch-size", "2")

    assert result.errors == [
        "line 4: line_id: identifiant en double (déjà ligne 2)",
        "line 4: net_reimbursed: différent de gross_reimbursed − participation_forfaitaire"
        " − franchise (à 1 centime près)",
        "line 5: line_id: identifiant en double (déjà ligne 2)",
        "line 5: rate: taux en pourcentage attendu, de 0 à 100 (ex. 70 ou 65.5)",
    ]
    assert ReimbursementLine.objects.get(line_id="L1").net_reimbursed == Decimal("19.00")


def test_importing_the_same_file_again_changes_nothing(tmp_path, paul, outbox):
    path = reimbursements_feed(
        tmp_path, [reimbursement(line_id=f"L{i}", payment_reference=f"V{i}") for i in range(5)]
    )
    first = run_import(path)
    stored = list(ReimbursementLine.objects.order_by("id").values())

    second = run_import(path)

    assert first.counts["created"] == 5
    assert second.exit_code == 0
    assert second.counts == {
        "created": 0,
        "updated": 0,
        "unchanged": 5,
        "rejected": 0,
        "emails": 0,
    }
    assert list(ReimbursementLine.objects.order_by("id").values()) == stored
    assert len(outbox(template="new_payment")) == 1


def test_a_changed_line_is_updated(tmp_path, paul, today, time_machine):
    run_import(
        reimbursements_feed(
            tmp_path,
            [
                reimbursement(line_id="L1"),
                reimbursement(
                    line_id="L2", status="in_progress", payment_date="", payment_reference=""
                ),
            ],
        )
    )
    before = ReimbursementLine.objects.get(line_id="L1")
    time_machine.move_to("2026-03-16 13:00:00+01:00", tick=False)

    result = run_import(
        reimbursements_feed(
            tmp_path,
            [
                reimbursement(line_id="L1", transmitted_to_complementary="no"),
                reimbursement(line_id="L2"),
            ],
        )
    )

    assert result.counts["updated"] == 2
    after = ReimbursementLine.objects.get(line_id="L1")
    assert after.transmitted_to_complementary is False
    assert after.imported_at == before.imported_at
    assert after.updated_at > before.updated_at
    moved = ReimbursementLine.objects.get(line_id="L2")
    assert (moved.status, moved.payment_date) == ("paid", date(2026, 3, 5))


def test_the_beneficiary_of_a_line_can_change(tmp_path, paul):
    run_import(reimbursements_feed(tmp_path, [reimbursement()]))

    result = run_import(reimbursements_feed(tmp_path, [reimbursement(beneficiary_nir=NIR_CHILD)]))

    assert result.counts["updated"] == 1
    assert ReimbursementLine.objects.get().beneficiary.first_names == "Léa"


def test_strict_imports_nothing_but_reports_every_bad_line(tmp_path, paul, outbox):
    path = reimbursements_feed(
        tmp_path,
        [
            reimbursement(line_id="L1"),
            reimbursement(line_id="L2", status="x"),
            reimbursement(line_id="L3"),
            reimbursement(line_id="L4", nir=NIR_UNKNOWN),
        ],
    )

    result = run_import(path, "--strict", "--batch-size", "2")

    assert result.exit_code == 1
    assert result.errors == [
        "line 3: status: in_progress ou paid attendu",
        "line 5: nir: assuré inconnu",
    ]
    assert "rien n’a été importé (2 ligne(s) rejetée(s))" in str(result.error)
    assert not ReimbursementLine.objects.exists()
    assert outbox() == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("nir,line_id", "En-tête incorrect : attendu « line_id,nir,"),
        (None, "Fichier vide"),
    ],
)
def test_a_bad_header_imports_nothing(tmp_path, paul, header, message):
    path = tmp_path / "feed.csv"
    path.write_text(f"{header}\n" if header else "")

    result = run_import(path)

    assert result.exit_code == 2
    assert message in str(result.error)
    assert not AuditEntry.objects.filter(action__startswith="payments").exists()


def test_a_missing_file_is_an_error(tmp_path, db):
    result = run_import(tmp_path / "absent.csv")

    assert result.exit_code == 2
    assert "Impossible d’ouvrir" in str(result.error)


def test_import_leaves_one_audit_entry_without_personal_data(tmp_path, paul):
    path = reimbursements_feed(tmp_path, [reimbursement(), reimbursement(line_id="L2", rate="x")])

    run_import(path)

    entry = AuditEntry.objects.get(action="payments.reimbursements.import.completed")
    assert (entry.actor, entry.member) == ("import", None)
    assert entry.data == {
        "file_name": "reimbursements.csv",
        "rows": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "emails": 1,
        "strict": False,
        "rolled_back": False,
        "bulk": connection.vendor == "postgresql",
    }
    assert NIR_A not in str(entry.data)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(tmp_path, paul):
    path = reimbursements_feed(tmp_path, [reimbursement()])
    terminal = FakeTerminal()

    call_command("import_reimbursements", str(path), stdout=io.StringIO(), stderr=terminal)

    assert "100%" in terminal.getvalue()
    assert run_import(path).stderr == ""


# Volume: batches, bounded memory


def lines(count: int, *, first: int = 0):
    for i in range(first, first + count):
        yield reimbursement(line_id=f"L{i:06d}", payment_reference=f"V{i}")


def test_thousands_of_lines_in_batches(tmp_path, paul, outbox):
    path = reimbursements_feed(tmp_path, lines(3_000))

    result = run_import(path, "--batch-size", "500")

    assert result.counts["created"] == 3_000
    assert ReimbursementLine.objects.count() == 3_000
    # One email for the member, however many lines and batches.
    assert len(outbox(template="new_payment")) == 1
    assert "3000 nouveaux paiements" in outbox(template="new_payment")[0].body_text

    path = reimbursements_feed(tmp_path, [*lines(1_000), *lines(500, first=3_000)])
    result = run_import(path, "--batch-size", "300")

    assert result.counts == {
        "created": 500,
        "updated": 0,
        "unchanged": 1_000,
        "rejected": 0,
        "emails": 1,
    }


def test_lines_are_streamed_not_loaded_first(tmp_path, paul):
    """The first batch is written before the input is read further: memory
    follows the batch size, not the file size."""
    pulled = 0

    def rows():
        nonlocal pulled
        for line, row in enumerate(lines(2_000), start=2):
            pulled += 1
            yield FeedRow(line, values=tuple(row.values()))

    seen_at_progress = []
    report = imports.reimbursements_import(
        rows=rows(),
        source_name="gen",
        batch_size=100,
        on_progress=lambda done: seen_at_progress.append(
            (done, pulled, ReimbursementLine.objects.count())
        ),
    )

    assert report.created == 2_000
    assert seen_at_progress[0] == (100, 100, 100)
    assert len(seen_at_progress) == 20


# The row parser on its own


@given(st.lists(st.text(), min_size=19, max_size=19))
def test_any_text_gives_errors_never_an_exception(values):
    parsed = imports.reimbursement_row_parse(values, today=TODAY)

    assert (parsed.row is None) == bool(parsed.errors)
    assert {error.field for error in parsed.errors} <= set(imports.REIMBURSEMENT_COLUMNS)


@given(
    base=st.decimals(min_value=0, max_value=10_000, places=2),
    rate=st.sampled_from(["15", "30", "60", "65", "70", "80", "100"]),
    flat=st.sampled_from(["0.00", "2.00"]),
)
def test_amounts_rounded_to_the_cent_always_add_up(base, rate, flat):
    gross = (base * Decimal(rate) / 100).quantize(Decimal("0.01"))
    net = gross - Decimal(flat)
    values = reimbursement(
        base_amount=f"{base:.2f}",
        amount_paid=f"{base:.2f}",
        rate=rate,
        gross_reimbursed=f"{gross:.2f}",
        participation_forfaitaire=flat,
        net_reimbursed=f"{net:.2f}",
    )

    parsed = imports.reimbursement_row_parse(list(values.values()), today=TODAY)

    if net < 0:
        assert [error.field for error in parsed.errors] == ["net_reimbursed"]
    else:
        assert parsed.errors == ()
        assert parsed.row.net_reimbursed == net
