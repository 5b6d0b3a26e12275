"""TOTP for staff, with django-otp's RFC 6238 implementation.

django-otp's device models point at AUTH_USER_MODEL, which here is the
members' Account; staff are a separate model, so we keep the key on `Staff`
and use django-otp's `oath.TOTP` and QR code helpers directly.
"""

import io
from base64 import b32encode
from binascii import unhexlify
from urllib.parse import quote, urlencode

from django.conf import settings
from django_otp.oath import TOTP
from django_otp.qr import write_qrcode_image
from django_otp.util import random_hex

STEP = 30
DIGITS = 6
TOLERANCE = 1  # one step either side: clocks of phones drift


def new_key() -> str:
    return random_hex(20)


def _totp(key_hex: str) -> TOTP:
    return TOTP(unhexlify(key_hex), step=STEP, digits=DIGITS)


def verify(*, key_hex: str, code: str, last_t: int) -> int | None:
    """The time step `code` matches (never one already used), or None."""
    code = (code or "").strip().replace(" ", "")
    if not (code.isascii() and code.isdigit() and len(code) == DIGITS) or not key_hex:
        return None
    totp = _totp(key_hex)
    if totp.verify(int(code), tolerance=TOLERANCE, min_t=last_t + 1):
        return totp.t()
    return None


def current_code(key_hex: str) -> str:
    """The code an authenticator app shows now (tests, demo)."""
    return f"{_totp(key_hex).token():0{DIGITS}d}"


def manual_key(key_hex: str) -> str:
    """The key as authenticator apps type it (base32, in groups of 4)."""
    raw = b32encode(unhexlify(key_hex)).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def provisioning_uri(*, key_hex: str, email: str) -> str:
    issuer = settings.SERVICE_NAME + " conseiller"
    label = quote(f"{issuer}:{email}")
    query = urlencode(
        {
            "secret": manual_key(key_hex).replace(" ", ""),
            "issuer": issuer,
            "digits": DIGITS,
            "period": STEP,
        }
    )
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    out = io.BytesIO()
    write_qrcode_image(uri, out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg") :]  # drop the XML prolog to inline it in HTML
