import re
from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from ninja import Schema
from pydantic import BeforeValidator, ConfigDict, Field, StrictStr, create_model

from portal.appointments.models import Appointment, Channel


def _written_date(value):
    """A date written as one, `YYYY-MM-DD` (a datetime at midnight stays accepted):
    pydantic alone also reads a number as a Unix time, `to=0` as 1970-01-01."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_written_date)]


class StrictSchema(Schema):
    # Strings must be strings: no numbers, arrays or objects coerced.
    model_config = ConfigDict(extra="forbid", strict=True)


class AccountCreateIn(StrictSchema):
    nir: StrictStr = Field(max_length=30)
    birth_date: IsoDate = Field(strict=False)
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
    birth_date: IsoDate = Field(strict=False)


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


# --- appointments ------------------------------------------------------------

# What a motive code looks like (a SlugField): anything else is malformed. It
# also keeps NUL characters, which PostgreSQL refuses in a query, out.
MOTIVE_CODE_PATTERN = r"^[-a-zA-Z0-9_]+$"
NO_NUL_PATTERN = r"^[^\x00]*$"
ChannelCode = Literal[tuple(Channel.values)]


def error_codes(name: str, *codes: str) -> type[Schema]:
    """An error answer whose `error` is one of `codes`: the OpenAPI schema lists them."""
    return create_model(name, __base__=Schema, error=(Literal[codes], ...))


class InvalidRequestOut(Schema):
    """The body or a parameter is malformed: the `fields` at fault."""

    error: Literal["invalid_request"]
    fields: list[str]


NotAuthenticatedOut = error_codes("NotAuthenticatedOut", "not_authenticated")
NotFoundOut = error_codes("NotFoundOut", "not_found")
SlotsRefusedOut = error_codes(
    "SlotsRefusedOut",
    "invalid_motive",
    "invalid_channel",
    "invalid_communication_mode",
    "invalid_period",
    "invalid_site",
)
BookRefusedOut = error_codes(
    "BookRefusedOut",
    "invalid_slot",
    "invalid_motive",
    "invalid_channel",
    "invalid_communication_mode",
    "phone_required",
    "message_too_long",
    "malformed_json",
)
BookConflictOut = error_codes("BookConflictOut", "motive_already_booked", "too_many_appointments")
RescheduleRefusedOut = error_codes(
    "RescheduleRefusedOut", "invalid_slot", "phone_required", "malformed_json"
)
ChangeConflictOut = error_codes("ChangeConflictOut", "too_late", "not_open")


class MotiveOut(Schema):
    code: str
    label: str
    description: str
    channels: list[ChannelCode]
    duration_minutes: int


class SiteOut(Schema):
    id: int
    name: str
    address: str


class SlotOut(Schema):
    """A free slot. `slot` is opaque: send it back as is to book or move."""

    slot: str
    start: datetime
    end: datetime
    site: int


class SlotTakenOut(Schema):
    """The slot was taken meanwhile (or has expired): the nearest free ones instead."""

    error: Literal["slot_taken"]
    alternatives: list[SlotOut]


class AppointmentOut(Schema):
    id: UUID
    motive: str
    channel: ChannelCode
    start: datetime
    end: datetime
    status: Literal[tuple(Appointment.Status.values)]
    site: SiteOut
    # Relay interviews: the mode (lsf, ttrp, lfpc) and the video-call link,
    # empty until the relay provider gives it.
    communication_mode: str
    video_url: str
    message: str
    # Whether the member may still cancel or move it (open, and 2 hours or more ahead).
    can_change: bool
    cancel_reason: str


class AppointmentBookIn(StrictSchema):
    slot: StrictStr = Field(max_length=200)
    motive: StrictStr = Field(max_length=40, pattern=MOTIVE_CODE_PATTERN)
    channel: StrictStr = Field(max_length=20)
    # Relay interviews: lsf, ttrp or lfpc (default: the account's).
    communication_mode: StrictStr = Field(default="", max_length=10)
    # Its length is the service's rule (`message_too_long`); the body's size bounds it here.
    message: StrictStr = Field(default="", pattern=NO_NUL_PATTERN)


class AppointmentRescheduleIn(StrictSchema):
    slot: StrictStr = Field(max_length=200)
