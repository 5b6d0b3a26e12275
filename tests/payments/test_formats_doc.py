"""The examples of docs/formats.md import as they are."""

import re
from datetime import date
from pathlib import Path

from portal.members.models import Beneficiary
from portal.payments.imports import ALLOWANCE_COLUMNS, REIMBURSEMENT_COLUMNS
from tests.factories import MemberFactory

from .helpers import run

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def example(header: tuple[str, ...]) -> str:
    """The code block of the doc that starts with this header and holds rows."""
    blocks = re.findall(r"```\n(.*?)```", DOC.read_text(), re.DOTALL)
    return next(
        block
        for block in blocks
        if block.startswith(",".join(header) + "\n") and block.count("\n") > 1
    )


def test_the_documented_examples_import_cleanly(tmp_path, db, today):
    member = MemberFactory(nir="185057500000147")
    Beneficiary.objects.create(
        member=member,
        nir="215037511104224",
        first_names="Léa",
        last_name="Martin",
        birth_date=date(2015, 3, 8),
    )
    for command, header in (
        ("import_reimbursements", REIMBURSEMENT_COLUMNS),
        ("import_allowances", ALLOWANCE_COLUMNS),
    ):
        path = tmp_path / f"{command}.csv"
        path.write_text(example(header))

        result = run(command, path)

        assert (result.exit_code, result.stderr) == (0, "")
        assert result.counts["created"] >= 1
