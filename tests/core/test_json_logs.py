"""LOG_FORMAT=json: one JSON object per line, with the request id, and still no
NIR, token, code or password."""

import copy
import io
import json
import logging
import logging.config
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from portal.core.logging import JsonFormatter
from portal.members.nir import key_for
from tests.core.test_logging import spaced
from tests.factories import PASSWORD, AccountFactory

ROOT = Path(__file__).resolve().parent.parent.parent
NIR13 = "1850578006084"
NIR15 = NIR13 + key_for(NIR13)


@pytest.fixture
def json_lines():
    """settings.LOGGING with the JSON formatter, its console writing into a StringIO;
    returns a function giving the lines written so far, parsed."""
    console = next(
        handler
        for handler in logging.getLogger("django").handlers
        if isinstance(handler, logging.StreamHandler)
    )
    previous_stream = console.stream
    output = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["formatter"] = "json"
    config["handlers"]["console"]["stream"] = output
    logging.config.dictConfig(config)

    def lines():
        return [json.loads(line) for line in output.getvalue().splitlines()]

    lines.raw = output
    yield lines
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["stream"] = previous_stream
    logging.config.dictConfig(config)


def test_each_line_is_one_json_object_with_its_fields(json_lines):
    logging.getLogger("portal.test").warning("plain %s line", "one")
    (line,) = json_lines()
    assert set(line) == {"time", "level", "logger", "request_id", "message", "process"}
    assert line["message"] == "plain one line"
    assert line["level"] == "WARNING"
    assert line["logger"] == "portal.test"
    assert line["request_id"] == "-"
    assert line["time"].endswith("+00:00")


@pytest.mark.django_db
def test_the_request_id_is_on_the_line_and_in_the_response(client, json_lines):
    response = client.get("/healthz")
    access = [line for line in json_lines() if line["logger"] == "portal.access"]
    assert access[-1]["message"].startswith("GET /healthz 200 ")
    assert access[-1]["request_id"] == response["X-Request-Id"]


TOKEN = secrets.token_urlsafe(32)
SECRETS = [
    ("login failed for nir=%s", NIR15),
    ("login failed for %s", spaced(NIR15)),
    ("sent https://compte.example.test/mot-de-passe-oublie/%s", TOKEN),
    ("headers: Authorization: Bearer %s", TOKEN),
    ("body: %s", f"nir=x&password={PASSWORD}&next=/"),
    ("payload %s", json.dumps({"password": PASSWORD, "sms_code": "48213977"})),
    ("form %r", {"code": "48213977", "new_password1": PASSWORD}),
]


@pytest.mark.parametrize(("template", "secret"), SECRETS)
def test_no_secret_in_a_json_line(json_lines, template, secret):
    logging.getLogger("portal.accounts").warning(template, secret)
    raw = json_lines.raw.getvalue()
    (line,) = json_lines()
    for value in (NIR13, NIR15, TOKEN, PASSWORD, "48213977", "6084"):
        assert value not in raw
        assert value not in line["message"]
    assert any(mark in line["message"] for mark in ("[NIR]", "[TOKEN]", "[MASKED]"))


def test_a_traceback_is_masked_in_its_own_field(json_lines):
    try:
        raise ValueError(f"no member with NIR {NIR15} (password={PASSWORD})")
    except ValueError:
        logging.getLogger("django.request").exception("Internal Server Error: /connexion/")
    (line,) = json_lines()
    assert "Traceback" in line["exception"]
    assert "ValueError: no member with NIR [NIR] (password=[MASKED]" in line["exception"]
    assert NIR15 not in json_lines.raw.getvalue()
    assert PASSWORD not in json_lines.raw.getvalue()


def test_the_formatter_masks_even_without_the_filter():
    """A handler configured without MaskSecretsFilter still writes no secret."""
    record = logging.LogRecord(
        "portal", logging.ERROR, __file__, 1, "nir=%s token=%s", (NIR15, TOKEN), None
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "nir=[NIR] token=[MASKED]"


@pytest.mark.django_db
def test_a_failed_login_leaves_nothing_in_json_logs(client, json_lines):
    account = AccountFactory()
    wrong = "Mauvais-Mot-De-Passe-17"
    client.post(f"/connexion/?nir={account.nir}", {"nir": account.nir, "password": wrong})
    raw = json_lines.raw.getvalue()
    assert "Bad Request: /connexion/" in raw
    for secret in (account.nir, wrong, "Mauvais"):
        assert secret not in raw


@pytest.mark.parametrize(("value", "formatter"), [(None, "plain"), ("json", "json")])
def test_log_format_selects_the_formatter(value, formatter):
    env = {k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}
    if value:
        env["LOG_FORMAT"] = value
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "import logging; logging.getLogger('portal').warning('nir=%s', '" + NIR15 + "'); "
        "print(settings.LOGGING['handlers']['console']['formatter'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == formatter
    assert NIR15 not in done.stderr
    if value == "json":
        assert json.loads(done.stderr.strip().splitlines()[-1])["message"] == "nir=[NIR]"
