"""Builders for payment feed files, and a runner for the import commands."""

import io
from datetime import date

from django.core.management import CommandError, call_command

from portal.members.nir import key_for
from portal.payments.imports import ALLOWANCE_COLUMNS, REIMBURSEMENT_COLUMNS

TODAY = date(2026, 3, 16)


def nir15(number13: str) -> str:
    return number13 + key_for(number13)


NIR_A = nir15("1850575000001")
NIR_B = nir15("2900175000002")
NIR_CHILD = nir15("2150375111042")
NIR_UNKNOWN = nir15("1700913000003")


def reimbursement(**values: str) -> dict[str, str]:
    """A valid reimbursements row (a GP consultation, paid to the member), with `values` replaced."""
    row = {
        "line_id": "L0001",
        "nir": NIR_A,
        "beneficiary_nir": "",
        "care_date": "2026-03-02",
        "act_code": "G",
        "act_label": "Consultation du médecin généraliste",
        "professional": "Dr Claire Lefèvre (médecin généraliste)",
        "amount_paid": "30.00",
        "base_amount": "30.00",
        "rate": "70",
        "gross_reimbursed": "21.00",
        "participation_forfaitaire": "2.00",
        "franchise": "0.00",
        "net_reimbursed": "19.00",
        "payee": "member",
        "payment_date": "2026-03-05",
        "payment_reference": "VIR20260305A",
        "transmitted_to_complementary": "yes",
        "status": "paid",
    }
    row.update(values)
    return row


def allowance(**values: str) -> dict[str, str]:
    """A valid daily-allowances row: the first 14 days paid of an open sick leave."""
    row = {
        "payment_id": "IJ0001",
        "nir": NIR_A,
        "stoppage_id": "AT01",
        "stoppage_kind": "maladie",
        "stoppage_start": "2026-02-01",
        "stoppage_end": "",
        "period_start": "2026-02-04",
        "period_end": "2026-02-17",
        "days": "14",
        "daily_gross": "41.47",
        "gross": "580.58",
        "csg": "36.00",
        "crds": "2.90",
        "net": "541.68",
        "payment_date": "2026-02-20",
        "status": "paid",
    }
    row.update(values)
    return row


def csv_line(row: dict[str, str]) -> str:
    columns = REIMBURSEMENT_COLUMNS if "line_id" in row else ALLOWANCE_COLUMNS
    return ",".join(f'"{row[name]}"' if "," in row[name] else row[name] for name in columns)


def write_feed(tmp_path, rows, *, columns=REIMBURSEMENT_COLUMNS, name="feed.csv"):
    """A feed file: the header of `columns`, then `rows` (dicts or raw lines)."""
    path = tmp_path / name
    lines = [",".join(columns)]
    lines += [row if isinstance(row, str) else csv_line(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reimbursements_feed(tmp_path, rows, name="reimbursements.csv"):
    return write_feed(tmp_path, rows, columns=REIMBURSEMENT_COLUMNS, name=name)


def allowances_feed(tmp_path, rows, name="allowances.csv"):
    return write_feed(tmp_path, rows, columns=ALLOWANCE_COLUMNS, name=name)


class Result:
    def __init__(self, stdout: str, stderr: str, error: CommandError | None):
        self.stdout, self.stderr, self.error = stdout, stderr, error

    @property
    def exit_code(self) -> int:
        return self.error.returncode if self.error else 0

    @property
    def errors(self) -> list[str]:
        return self.stderr.splitlines()

    @property
    def counts(self) -> dict[str, int]:
        """The summary line, `created=1 updated=0 …`, as a dict."""
        line = self.stdout.strip().splitlines()[-1]
        return {key: int(value) for key, value in (item.split("=") for item in line.split())}


def run(command: str, path, *args) -> Result:
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        call_command(command, str(path), *args, stdout=stdout, stderr=stderr)
    except CommandError as exc:
        return Result(stdout.getvalue(), stderr.getvalue(), exc)
    return Result(stdout.getvalue(), stderr.getvalue(), None)
