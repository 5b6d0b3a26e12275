from datetime import date

from ninja import Schema
from pydantic import ConfigDict, Field, StrictStr


class StrictSchema(Schema):
    # Strings must be strings: no numbers, arrays or objects coerced.
    model_config = ConfigDict(extra="forbid", strict=True)


class AccountCreateIn(StrictSchema):
    nir: StrictStr = Field(max_length=30)
    birth_date: date = Field(strict=False)
    iban_last7: StrictStr = Field(max_length=20)
    email: StrictStr = Field(max_length=254)
    mobile_phone: StrictStr = Field(default="", max_length=30)
    password: StrictStr = Field(max_length=1024)


class AcceptedOut(Schema):
    status: str
    detail: str


class ErrorOut(Schema):
    error: str


class WeakPasswordOut(Schema):
    error: str
    rules: list[str]


class TokenIn(StrictSchema):
    nir: StrictStr = Field(max_length=30)
    password: StrictStr = Field(max_length=1024)


class TokenOut(Schema):
    access_token: str
    token_type: str
    expires_in: int


class MeOut(Schema):
    nir: str
    first_names: str
    last_name: str
    email: str
    mobile_phone: str
    cpam: dict


class PasswordResetIn(StrictSchema):
    nir: StrictStr = Field(max_length=30)
    birth_date: date = Field(strict=False)


class PasswordResetConfirmIn(StrictSchema):
    token: StrictStr = Field(max_length=200)
    new_password: StrictStr = Field(max_length=1024)


class DetailOut(Schema):
    detail: str


class StatusOut(Schema):
    status: str


class SmsCodeResetIn(StrictSchema):
    nir: StrictStr = Field(max_length=30)
    code: StrictStr = Field(max_length=12)
    new_password: StrictStr = Field(max_length=1024)


class ReimbursementOut(Schema):
    line_id: str
    beneficiary_nir: str
    care_date: date
    act_code: str
    act_label: str
    professional: str
    amount_paid: str
    base_amount: str
    rate: str
    gross_reimbursed: str
    participation_forfaitaire: str
    franchise: str
    net_reimbursed: str
    payee: str
    payment_date: date | None
    payment_reference: str
    transmitted_to_complementary: bool
    status: str


class ReimbursementPage(Schema):
    items: list[ReimbursementOut]
    next_cursor: str | None


class AllowancePaymentOut(Schema):
    payment_id: str
    period_start: date
    period_end: date
    days: int
    daily_gross: str
    gross: str
    csg: str
    crds: str
    net: str
    payment_date: date | None
    status: str


class StoppageOut(Schema):
    stoppage_id: str
    stoppage_kind: str
    stoppage_start: date
    stoppage_end: date | None
    waiting_days: int
    total_paid: str
    next_payment_expected: date | None
    payments: list[AllowancePaymentOut]
