"""`manage.py import_allowances`: validation, stoppages, idempotence, updates.

On SQLite through the ORM path, on PostgreSQL (`make test-postgres`) through the bulk path.
"""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from portal.audit.models import AuditEntry
from portal.payments import imports
from portal.payments.models import AllowancePayment, WorkStoppage

from .helpers import NIR_A, NIR_B, NIR_UNKNOWN, TODAY, allowance, allowances_feed, run


def run_import(path, *args):
    return run("import_allowances", path, *args)


def second_payment(**values):
    """The next 14 days of the same sick leave."""
    next_period = {
        "payment_id": "IJ0002",
        "period_start": "2026-02-18",
        "period_end": "2026-03-03",
        "payment_date": "2026-03-06",
    }
    return allowance(**{**next_period, **values})


def test_payments_and_their_stoppage_are_imported(tmp_path, paul):
    result = run_import(allowances_feed(tmp_path, [allowance(), second_payment()]))

    assert result.exit_code == 0, result.stderr
    assert result.counts == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "stoppages_created": 1,
        "stoppages_updated": 0,
        "emails": 1,
    }
    stoppage = WorkStoppage.objects.get()
    assert (stoppage.stoppage_id, stoppage.member, stoppage.kind) == ("AT01", paul, "maladie")
    assert (stoppage.start, stoppage.end, stoppage.waiting_days) == (date(2026, 2, 1), None, 3)
    first = AllowancePayment.objects.get(payment_id="IJ0001")
    assert (first.stoppage, first.member) == (stoppage, paul)
    assert (first.period_start, first.period_end, first.days) == (
        date(2026, 2, 4),
        date(2026, 2, 17),
        14,
    )
    assert (first.daily_gross, first.gross) == (Decimal("41.47"), Decimal("580.58"))
    assert (first.csg, first.crds, first.net) == (
        Decimal("36.00"),
        Decimal("2.90"),
        Decimal("541.68"),
    )
    assert (first.payment_date, first.status) == (date(2026, 2, 20), "paid")


@pytest.mark.parametrize(
    ("kind", "waiting_days"), [("maladie", 3), ("at_mp", 0), ("maternite", 0), ("paternite", 0)]
)
def test_waiting_days_follow_the_kind(tmp_path, paul, kind, waiting_days):
    run_import(allowances_feed(tmp_path, [allowance(stoppage_kind=kind)]))

    assert WorkStoppage.objects.get().waiting_days == waiting_days


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"payment_id": ""}, "payment_id: obligatoire"),
        ({"nir": NIR_UNKNOWN}, "nir: assuré inconnu"),
        ({"nir": "2" + NIR_A[1:]}, "nir: clé incorrecte"),
        ({"stoppage_id": "AT 01"}, "stoppage_id: identifiant attendu"),
        ({"stoppage_kind": "maternity"}, "stoppage_kind: maladie, at_mp, maternite ou paternite"),
        ({"stoppage_start": ""}, "stoppage_start: obligatoire"),
        (
            {"stoppage_start": "2026-03-17"},
            ["stoppage_start: date dans le futur",
             "period_start: antérieure au début de l’arrêt (stoppage_start)"],
        ),
        ({"stoppage_end": "2026-01-31"}, "stoppage_end: antérieure à stoppage_start"),
        ({"stoppage_end": "2026-02-10"}, "period_end: postérieure à la fin de l’arrêt"),
        (
            {"period_start": "2026-01-31", "days": "18", "gross": "746.46", "csg": "46.28",
             "crds": "3.73", "net": "696.45"},
            "period_start: antérieure au début de l’arrêt (stoppage_start)",
        ),
        ({"period_end": "2026-02-03"}, "period_end: antérieure à period_start"),
        ({"period_end": "2026-02-30"}, "period_end: date inexistante"),
        (
            {"period_start": "2026-03-10", "period_end": "2026-03-17", "days": "8",
             "gross": "331.76", "csg": "20.57", "crds": "1.66", "net": "309.53",
             "payment_date": "", "status": "in_progress"},
            "period_end: date dans le futur",
        ),
        ({"days": "13"}, "days: 14 attendu (de period_start à period_end inclus)"),
        ({"days": "0"}, "days: nombre entier de jours attendu"),
        ({"days": "14.0"}, "days: nombre entier de jours attendu"),
        ({"daily_gross": "41.4"}, "daily_gross: montant en euros attendu"),
        ({"daily_gross": "41.48"}, "gross: différent de daily_gross × days (à 1 centime près)"),
        ({"csg": "36.02", "net": "541.66"}, "csg: différente de 6,2 % de gross"),
        ({"crds": "2.92", "net": "541.66"}, "crds: différente de 0,5 % de gross"),
        ({"net": "541.70"}, "net: différent de gross − csg − crds (à 1 centime près)"),
        ({"net": "-541.68"}, "net: montant négatif interdit"),
        ({"payment_date": "2026-02-16"}, "payment_date: antérieure à la fin de la période"),
        ({"payment_date": ""}, "payment_date: obligatoire quand status vaut paid"),
        ({"payment_date": "2026-03-17"}, "payment_date: date dans le futur pour un paiement"),
        ({"status": "PAID"}, "status: in_progress ou paid attendu"),
    ],
)  # fmt: skip
def test_each_rule_is_reported(tmp_path, paul, values, expected):
    path = allowances_feed(
        tmp_path, [allowance(payment_id="GOOD", stoppage_id="AT-GOOD"), allowance(**values)]
    )

    result = run_import(path)

    assert result.exit_code == 1
    expected = [expected] if isinstance(expected, str) else expected
    assert len(result.errors) == len(expected), result.errors
    for error, start in zip(result.errors, expected, strict=True):
        assert error.startswith(f"line 3: {start}")
    assert list(AllowancePayment.objects.values_list("payment_id", flat=True)) == ["GOOD"]


@pytest.mark.parametrize(
    "values",
    [
        {"csg": "35.99", "net": "541.69"},  # within a cent of 35.99596
        {"stoppage_end": "2026-02-17"},  # the last day of the stoppage
        {"payment_date": "2026-02-17"},  # paid the day the period ends
        {"payment_date": "", "status": "in_progress"},
        {"stoppage_kind": "at_mp", "period_start": "2026-02-01", "period_end": "2026-02-14"},
    ],
)
def test_accepted_edge_cases(tmp_path, paul, values):
    result = run_import(allowances_feed(tmp_path, [allowance(**values)]))

    assert result.exit_code == 0, result.stderr


def test_every_row_of_a_stoppage_describes_it_the_same(tmp_path, paul, camille):
    path = allowances_feed(
        tmp_path,
        [
            allowance(),
            second_payment(stoppage_end="2026-03-10"),
            allowance(payment_id="IJ0003", nir=NIR_B),
            allowance(payment_id="IJ0004", stoppage_kind="at_mp", nir=NIR_UNKNOWN),
            second_payment(payment_id="IJ0005"),
        ],
    )

    result = run_import(path, "--batch-size", "2")

    assert result.errors == [
        "line 3: stoppage_id: arrêt décrit autrement à la ligne 2 (assuré, nature ou dates)",
        "line 4: stoppage_id: arrêt décrit autrement à la ligne 2 (assuré, nature ou dates)",
        "line 5: nir: assuré inconnu",
        "line 5: stoppage_id: arrêt décrit autrement à la ligne 2 (assuré, nature ou dates)",
    ]
    assert set(AllowancePayment.objects.values_list("payment_id", flat=True)) == {
        "IJ0001",
        "IJ0005",
    }


def test_a_stoppage_stays_with_its_member(tmp_path, paul, camille):
    run_import(allowances_feed(tmp_path, [allowance()]))

    result = run_import(allowances_feed(tmp_path, [second_payment(nir=NIR_B)]))

    assert result.errors == ["line 2: stoppage_id: arrêt d’un autre assuré"]
    assert WorkStoppage.objects.get().member == paul


def test_a_payment_id_twice_in_the_file_is_rejected_after_the_first(tmp_path, paul):
    path = allowances_feed(tmp_path, [allowance(), second_payment(payment_id="IJ0001")])

    result = run_import(path)

    assert result.errors == ["line 3: payment_id: identifiant en double (déjà ligne 2)"]


def test_importing_the_same_file_again_changes_nothing(tmp_path, paul, outbox):
    path = allowances_feed(tmp_path, [allowance(), second_payment()])
    run_import(path)
    stored = list(AllowancePayment.objects.order_by("id").values())

    result = run_import(path)

    assert result.counts == {
        "created": 0,
        "updated": 0,
        "unchanged": 2,
        "rejected": 0,
        "stoppages_created": 0,
        "stoppages_updated": 0,
        "emails": 0,
    }
    assert list(AllowancePayment.objects.order_by("id").values()) == stored
    assert len(outbox(template="new_payment")) == 1


def test_the_end_of_a_stoppage_and_a_corrected_payment_are_updated(tmp_path, paul):
    run_import(allowances_feed(tmp_path, [allowance(), second_payment()]))

    result = run_import(
        allowances_feed(
            tmp_path,
            [
                allowance(stoppage_end="2026-03-03"),
                second_payment(
                    stoppage_end="2026-03-03",
                    daily_gross="40.00",
                    gross="560.00",
                    csg="34.72",
                    crds="2.80",
                    net="522.48",
                ),
            ],
        )
    )

    assert result.counts["stoppages_updated"] == 1
    assert result.counts["updated"] == 1
    assert result.counts["unchanged"] == 1
    assert WorkStoppage.objects.get().end == date(2026, 3, 3)
    assert AllowancePayment.objects.get(payment_id="IJ0002").net == Decimal("522.48")


def test_strict_imports_nothing(tmp_path, paul):
    path = allowances_feed(tmp_path, [allowance(), second_payment(days="3")])

    result = run_import(path, "--strict")

    assert result.exit_code == 1
    assert not WorkStoppage.objects.exists()
    assert not AllowancePayment.objects.exists()


def test_a_bad_header_imports_nothing(tmp_path, paul):
    path = allowances_feed(tmp_path, [allowance()])
    path.write_text(path.read_text().replace("stoppage_kind", "kind", 1))

    result = run_import(path)

    assert result.exit_code == 2
    assert "En-tête incorrect" in str(result.error)


def test_import_leaves_one_audit_entry(tmp_path, paul):
    run_import(allowances_feed(tmp_path, [allowance(), second_payment(status="x")]))

    entry = AuditEntry.objects.get(action="payments.allowances.import.completed")
    assert entry.data == {
        "file_name": "allowances.csv",
        "rows": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "stoppages_created": 1,
        "stoppages_updated": 0,
        "emails": 1,
        "strict": False,
        "rolled_back": False,
        "bulk": connection.vendor == "postgresql",
    }


def test_thousands_of_payments_in_batches(tmp_path, paul, camille):
    rows = []
    for i in range(2_000):
        rows.append(allowance(payment_id=f"IJ{i:05d}", stoppage_id=f"AT{i // 4:04d}"))
    path = allowances_feed(tmp_path, rows)

    result = run_import(path, "--batch-size", "300")

    assert result.counts["created"] == 2_000
    assert result.counts["stoppages_created"] == 500
    assert result.counts["emails"] == 1
    assert run_import(path, "--batch-size", "700").counts["unchanged"] == 2_000


@given(st.lists(st.text(), min_size=16, max_size=16))
def test_any_text_gives_errors_never_an_exception(values):
    parsed = imports.allowance_row_parse(values, today=TODAY)

    assert (parsed.row is None) == bool(parsed.errors)
    assert {error.field for error in parsed.errors} <= set(imports.ALLOWANCE_COLUMNS)


@given(
    daily=st.decimals(min_value=0, max_value=300, places=2),
    days=st.integers(1, 28),
)
def test_levies_rounded_to_the_cent_always_add_up(daily, days):
    gross = daily * days
    csg = (gross * Decimal("0.062")).quantize(Decimal("0.01"))
    crds = (gross * Decimal("0.005")).quantize(Decimal("0.01"))
    end = date(2026, 2, 4) + timedelta(days=days - 1)
    values = allowance(
        period_end=end.isoformat(),
        days=str(days),
        daily_gross=f"{daily:.2f}",
        gross=f"{gross:.2f}",
        csg=f"{csg:.2f}",
        crds=f"{crds:.2f}",
        net=f"{gross - csg - crds:.2f}",
        payment_date="2026-03-10",
    )

    parsed = imports.allowance_row_parse(list(values.values()), today=TODAY)

    assert parsed.errors == ()
    assert parsed.row.net == gross - csg - crds
