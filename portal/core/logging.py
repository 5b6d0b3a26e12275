"""Logging filters and formatter: a request id on every line, and no secret ever written.

Masks NIRs (13 or 15 characters, with or without spaces), one-time tokens in
the portal's link paths, bearer tokens and anything that looks like a
password, code or token field. Applied to the formatted message so that
arguments interpolated by Django itself (request paths, SQL) are covered too.
`JsonFormatter` writes the same lines as JSON (`LOG_FORMAT=json`).
"""

import json
import logging
import re
from datetime import datetime, timezone

from portal.core.request_id import current_request_id

_PATTERNS = [
    # Tokens inside the portal's link paths (confirmation, reset, enrolment).
    (
        re.compile(r"(/(?:confirmer|mot-de-passe-oublie|enrolement)/)[A-Za-z0-9_\-]{24,}"),
        r"\1[TOKEN]",
    ),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.]+"), r"\1[TOKEN]"),
    # A quoted value (JSON, repr) may hold spaces, commas or the other quote
    # (a passphrase): mask it up to its closing quote.
    (
        re.compile(
            r"""(?i)((?<![\w])["']?(?:\w*password\w*|\w*token|\w*secret\w*|iban\w*|code|otp|(?:sms|recovery|otp|verification)_code)["']?\s*[:=]\s*)(["'])(?:\\.|(?!\2)[^\\])*\2"""
        ),
        r"\1\2[MASKED]\2",
    ),
    (
        re.compile(
            r"""(?i)((?<![\w])["']?(?:\w*password\w*|\w*token|\w*secret\w*|iban\w*|code|otp|(?:sms|recovery|otp|verification)_code)["']?\s*[:=]\s*["']?)[^"'&\s,}]+"""
        ),
        r"\1[MASKED]",
    ),
    # NIR: sex digit, then 12 more characters (2A/2B allowed), optional key;
    # spaces, dots or dashes between groups, which may fall anywhere in the
    # last six digits (overseas numbers are printed "976 01 005").
    (
        re.compile(
            r"(?<![0-9A-Za-z])[1-478][ .-]?\d{2}[ .-]?\d{2}[ .-]?(?:\d{2}|2[AaBb])"
            r"(?:[ .-]?\d){6}(?:[ .-]?\d{2})?(?![0-9])"
        ),
        "[NIR]",
    ),
]


def mask_secrets(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class MaskSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = str(record.msg)
        masked = mask_secrets(message)
        record.msg = masked
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`LOG_FORMAT=json`), for a log collector.

    Fields: `time` (UTC, ISO 8601), `level`, `logger`, `request_id`, `message`,
    `process` and, with an exception, `exception`. Arbitrary `extra=` fields are
    left out on purpose: nothing reaches the line that the masking has not seen.
    The message and the traceback are masked here again, so that a handler
    configured without `MaskSecretsFilter` still writes no secret (masking an
    already masked text changes nothing).
    """

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the line
            message = str(record.msg)
        line = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or current_request_id() or "-",
            "message": mask_secrets(message),
            "process": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = mask_secrets(record.exc_text)
        if record.stack_info:
            line["stack"] = mask_secrets(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)
