"""The "Nouveau paiement" email: one per member per import, only for payments made paid."""

from decimal import Decimal
from email import message_from_bytes, policy

import pytest

from portal.accounts.models import Account
from portal.notifications.models import OutboundMessage
from portal.payments import notifications
from portal.payments.models import NewPaymentNotice
from tests.factories import AccountFactory, MemberFactory

from .helpers import (
    NIR_A,
    NIR_B,
    NIR_CHILD,
    allowance,
    allowances_feed,
    nir15,
    reimbursement,
    reimbursements_feed,
    run,
)


def consultation(line_id: str, **values):
    return reimbursement(line_id=line_id, payment_reference=f"V-{line_id}", **values)


def in_progress(line_id: str):
    return reimbursement(
        line_id=line_id, status="in_progress", payment_date="", payment_reference=""
    )


def test_one_email_per_member_per_import_with_count_and_total(tmp_path, paul, camille, outbox):
    path = reimbursements_feed(
        tmp_path,
        [
            consultation("L1"),
            consultation("L2", beneficiary_nir=NIR_CHILD),
            consultation("L3", nir=NIR_B),
            consultation(
                "L4",
                base_amount="1500.00",
                amount_paid="1500.00",
                rate="100",
                gross_reimbursed="1500.00",
                participation_forfaitaire="0.00",
                net_reimbursed="1500.00",
            ),
        ],
    )

    result = run("import_reimbursements", path, "--batch-size", "1")

    assert result.counts["emails"] == 2
    messages = outbox(template="new_payment")
    assert [message.member for message in messages] == [paul, camille]
    to_paul = messages[0]
    assert to_paul.recipient == "paul@example.org"
    assert to_paul.subject == "Nouveaux paiements de l'Assurance Maladie"
    text = " ".join(to_paul.body_text.split())
    assert "Bonjour Paul Martin" in text
    assert (
        "L'Assurance Maladie a effectué 3 nouveaux paiements de remboursement de soins, "
        "pour un montant net total de 1 538,00 €." in text
    )
    assert "https://compte.example.test/paiements/" in text
    assert 'href="https://compte.example.test/paiements/"' in to_paul.body_html
    assert "<strong>1\u00a0538,00\u00a0€</strong>" in to_paul.body_html
    # The NIR only masked, in both parts.
    for body in (to_paul.body_text, to_paul.body_html):
        assert NIR_A[:13] not in body
        assert NIR_CHILD[:13] not in body
        assert "•••••••••0001" in body
    assert "un nouveau paiement de remboursement de soins" in messages[1].body_text
    assert messages[1].subject == "Nouveau paiement de l'Assurance Maladie"
    assert not NewPaymentNotice.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_emails_go_out_through_a_real_smtp_server(
    tmp_path, paul, camille, run_tasks, smtp_server
):
    path = reimbursements_feed(tmp_path, [consultation("L1"), consultation("L2", nir=NIR_B)])
    run("import_reimbursements", path)

    run_tasks()

    assert sorted(rcpt for m in smtp_server.messages for rcpt in m.rcpt_tos) == [
        "camille@example.org",
        "paul@example.org",
    ]
    parsed = message_from_bytes(smtp_server.messages[0].content, policy=policy.default)
    assert parsed["Subject"] == "Nouveau paiement de l'Assurance Maladie"
    assert "/paiements/" in parsed.get_body(("html",)).get_content()
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}
    run_tasks()
    assert len(smtp_server.messages) == 2  # never twice


def test_no_email_for_lines_still_in_progress_then_one_when_paid(tmp_path, paul, outbox):
    run(
        "import_reimbursements",
        reimbursements_feed(tmp_path, [consultation("L1"), in_progress("L2")]),
    )
    assert "un nouveau paiement" in outbox(template="new_payment")[0].body_text

    run("import_reimbursements", reimbursements_feed(tmp_path, [in_progress("L3")]))
    assert len(outbox(template="new_payment")) == 1

    result = run(
        "import_reimbursements",
        reimbursements_feed(tmp_path, [consultation("L2"), consultation("L3"), in_progress("L4")]),
    )

    assert result.counts["emails"] == 1
    latest = outbox(template="new_payment")[-1]
    assert "2 nouveaux paiements" in latest.body_text
    assert "38,00" in latest.body_text


def test_a_correction_of_a_paid_line_sends_nothing(tmp_path, paul, outbox):
    run("import_reimbursements", reimbursements_feed(tmp_path, [consultation("L1")]))

    result = run(
        "import_reimbursements",
        reimbursements_feed(tmp_path, [consultation("L1", transmitted_to_complementary="no")]),
    )

    assert result.counts["updated"] == 1
    assert len(outbox(template="new_payment")) == 1


def test_opted_out_or_without_an_active_account_no_email(tmp_path, paul, camille, outbox):
    Account.objects.filter(member=paul).update(notify_new_payments=False)
    Account.objects.filter(member=camille).update(state=Account.State.PENDING)
    no_account = MemberFactory(nir=nir15("1700913000004"))
    deleted = MemberFactory(nir=nir15("1700913000005"))
    AccountFactory(member=deleted, nir=None, state=Account.State.DELETED)
    path = reimbursements_feed(
        tmp_path,
        [
            consultation("L1"),
            consultation("L2", nir=NIR_B),
            consultation("L3", nir=no_account.nir),
            consultation("L4", nir=deleted.nir),
        ],
    )

    result = run("import_reimbursements", path)

    assert result.counts == {
        "created": 4,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "emails": 0,
    }
    assert outbox() == []
    assert not NewPaymentNotice.objects.exists()  # dropped, not kept for later


def test_the_email_goes_to_the_account_address(tmp_path, paul, outbox):
    Account.objects.filter(member=paul).update(email="paul.nouveau@example.org")

    run("import_reimbursements", reimbursements_feed(tmp_path, [consultation("L1")]))

    assert outbox(template="new_payment")[0].recipient == "paul.nouveau@example.org"


def test_daily_allowances_have_their_own_email(tmp_path, paul, outbox, run_tasks):
    path = allowances_feed(
        tmp_path,
        [
            allowance(),
            allowance(
                payment_id="IJ0002",
                period_start="2026-02-18",
                period_end="2026-03-03",
                payment_date="",
                status="in_progress",
            ),
        ],
    )

    result = run("import_allowances", path)

    assert result.counts["emails"] == 1
    text = " ".join(outbox(template="new_payment")[0].body_text.split())
    assert (
        "L'Assurance Maladie vous a versé un nouveau paiement d'indemnités journalières, "
        "pour un montant net total de 541,68 €." in text
    )
    assert "https://compte.example.test/indemnites/" in text
    assert run("import_allowances", path).counts["emails"] == 0


def test_no_email_option_announces_nothing_ever(tmp_path, paul, outbox):
    """For the first load of the history: members are not told of last year's payments."""
    result = run(
        "import_reimbursements",
        reimbursements_feed(tmp_path, [consultation("L1")]),
        "--no-email",
    )
    assert result.counts["emails"] == 0
    assert outbox() == []
    assert not NewPaymentNotice.objects.exists()

    result = run("import_reimbursements", reimbursements_feed(tmp_path, [consultation("L2")]))

    assert "un nouveau paiement" in outbox(template="new_payment")[0].body_text


def test_notices_left_by_an_interrupted_import_are_sent_by_the_next_one(tmp_path, paul, outbox):
    NewPaymentNotice.objects.create(
        member=paul,
        kind="reimbursement",
        payments=2,
        net_total=Decimal("40.00"),
        created_at=paul.created_at,
    )

    result = run("import_reimbursements", reimbursements_feed(tmp_path, [consultation("L1")]))

    assert result.counts["emails"] == 1
    assert "3 nouveaux paiements" in outbox(template="new_payment")[0].body_text
    assert "59,00" in outbox(template="new_payment")[0].body_text
    assert not NewPaymentNotice.objects.exists()


def test_notices_are_sent_in_chunks(paul, camille, outbox):
    for member in (paul, camille):
        NewPaymentNotice.objects.create(
            member=member,
            kind="reimbursement",
            payments=1,
            net_total=Decimal("12.50"),
            created_at=paul.created_at,
        )
    NewPaymentNotice.objects.create(
        member=paul, kind="allowance", payments=1, net_total=1, created_at=paul.created_at
    )

    assert notifications.new_payment_notices_send(kind="reimbursement", chunk_size=1) == 2
    assert len(outbox(template="new_payment")) == 2
    assert list(NewPaymentNotice.objects.values_list("kind", flat=True)) == ["allowance"]


def test_euros_are_written_the_french_way():
    assert notifications.euros(Decimal("0.5")) == "0,50\u00a0€"
    assert notifications.euros(Decimal("1234567.891")) == "1\u00a0234\u00a0567,89\u00a0€"
