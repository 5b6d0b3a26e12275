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
