"""The password policy: each rule by its stable name, Unicode, and no truncation."""

import unicodedata
from datetime import date

import pytest
from django.contrib.auth.password_validation import (
    CommonPasswordValidator,
    password_validators_help_text_html,
    validate_password,
)
from django.core.exceptions import ValidationError
from hypothesis import assume, given
from hypothesis import strategies as st

from portal.accounts.models import Account
from portal.accounts.passwords import RULES, PersonalData, PolicyValidator, unmet_rules
from tests.factories import AccountFactory

PASSPHRASE = "Le chat dort sur le canapé bleu"
COMMON = CommonPasswordValidator().passwords

PERSONAL = PersonalData(
    nir="285057800608436",
    birth_date=date(1985, 5, 12),
    last_name="Dupont-Moreau",
    first_names="Jeanne Marie",
    email="camelia.rouge75@example.org",
)


# --- min_length ------------------------------------------------------------------


def test_min_length_is_12_by_default():
    assert unmet_rules("Abcdefghijk") == ["min_length"]  # 11
    assert unmet_rules("Abcdefghijkm") == []  # 12


def test_min_length_follows_the_setting(settings):
    settings.PASSWORD_MIN_LENGTH = 16
    assert unmet_rules("Abcdefghijkmnop") == ["min_length"]  # 15
    assert unmet_rules("Abcdefghijkmnopq") == []  # 16
    settings.PASSWORD_MIN_LENGTH = 8
    assert unmet_rules("Abcdefgz") == []


def test_min_length_message_shows_the_configured_value(settings):
    settings.PASSWORD_MIN_LENGTH = 14
    with pytest.raises(ValidationError) as exc:
        PolicyValidator().validate("Short-One")
    assert "Au moins 14 caractères." in exc.value.messages
    assert "14" in PolicyValidator().get_help_text()


@given(st.text(min_size=0, max_size=11))
def test_anything_shorter_than_12_is_refused_for_length(password):
    assume(len(unicodedata.normalize("NFKC", password)) < 12)
    assert "min_length" in unmet_rules(password)


# --- max_length and no truncation -------------------------------------------------


def test_max_length_is_128():
    assert unmet_rules("Aa" + "x" * 126) == []
    assert unmet_rules("Aa" + "x" * 127) == ["max_length"]


def test_the_whole_128_characters_count_for_the_hash():
    base = "Aa" + "bcdefghijk" * 12 + "lmnopq"
    first, second = base[:-1] + "1", base[:-1] + "2"
    assert len(first) == len(second) == 128
    assert unmet_rules(first) == unmet_rules(second) == []
    account = Account(email="jeanne@example.org")
    account.set_password(first)
    assert account.check_password(first)
    assert not account.check_password(second)
    assert not account.check_password(first[:72])  # no bcrypt-style cut either


# --- uppercase, lowercase, optional digits and specials -------------------------------


def test_uppercase_required():
    assert unmet_rules("le chat dort sur le canapé") == ["uppercase"]


def test_lowercase_required():
    assert unmet_rules("LE CHAT DORT SUR LE CANAPÉ") == ["lowercase"]


def test_unmet_rules_are_all_listed_in_a_stable_order():
    assert unmet_rules("1234") == ["min_length", "uppercase", "lowercase", "common"]
    assert unmet_rules("") == ["min_length", "uppercase", "lowercase"]


def test_digits_and_special_characters_are_optional():
    assert unmet_rules("CorrectHorseBatteryStaple") == []
    assert unmet_rules("Le chat dort sur le canape") == []


def test_the_rules_shown_to_members_have_stable_names():
    assert RULES == ["min_length", "uppercase", "lowercase", "common", "personal_data"]


# --- common -----------------------------------------------------------------------------


def test_a_common_password_meeting_length_and_case_is_refused():
    assert "administrator" in COMMON
    assert unmet_rules("Administrator") == ["common"]
    assert unmet_rules("MANCHESTERunited") == ["common"]
    assert unmet_rules("  Administrator  ") == ["common"]


def test_a_shorter_common_password_is_refused_when_the_minimum_is_lowered(settings):
    settings.PASSWORD_MIN_LENGTH = 8
    assert "password" in COMMON
    assert unmet_rules("Password") == ["common"]
    assert unmet_rules("Pasxword") == []


# --- personal data ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        "Mon numero 285057800608436",  # NIR with key
        "Mon numero 2850578006084",  # the 13 characters
        "Mon numero 2 85 05 78 006 084",  # as printed on the card
        "Ne le 12051985 a Paris",  # birth date ddmmyyyy
        "Ne le 1985-05-12 a Paris",
        "Ne le 12/05/1985 a Paris",
        "Famille Dupont pour toujours",  # last name (one of its parts)
        "Les Moreau sont au bord de la mer",
        "Bonjour Jeanne comment vas-tu",  # first name
        "Chez Marie on mange bien",
        "Ma fleur Camelia.Rouge75",  # email local part
        "Le petit chaperon rouge75",  # one part of the email local part
        "Ecrire a Camelia.rouge75@example.org",  # whole email
    ],
)
def test_personal_data_is_refused(password):
    assert unmet_rules(password, PERSONAL) == ["personal_data"]
    assert unmet_rules(password) == []  # the same password is fine for someone else


def test_a_long_unrelated_passphrase_is_accepted_with_personal_data():
    assert unmet_rules(PASSPHRASE, PERSONAL) == []


def test_policy_validator_uses_the_account_members_data(db):
    account = AccountFactory(member__last_name="Vasseur", member__first_names="Camille")
    with pytest.raises(ValidationError) as exc:
        validate_password("Camille-Vasseur-2024", user=account)
    assert [error.code for error in exc.value.error_list] == ["personal_data"]
    with pytest.raises(ValidationError) as exc:
        validate_password("VasseurVasseur" + account.member.nir, user=account)
    assert [error.code for error in exc.value.error_list] == ["personal_data"]
    validate_password(PASSPHRASE, user=account)


def test_policy_validator_reports_every_unmet_rule_with_its_code():
    with pytest.raises(ValidationError) as exc:
        validate_password("abcz")
    assert [error.code for error in exc.value.error_list] == ["min_length", "uppercase"]
    assert "Au moins une lettre majuscule." in exc.value.messages
    assert "Au moins 12 caractères." in password_validators_help_text_html()


# --- Unicode and NFKC ---------------------------------------------------------------------


def test_unicode_passwords_are_accepted():
    password = "Ωμέγα Пароль 日本語 été"
    assert unmet_rules(password) == []
    account = Account(email="jeanne@example.org")
    account.set_password(password)
    assert account.check_password(password)
    assert not account.check_password(password.replace("é", "e"))


@pytest.mark.parametrize(
    ("typed", "equivalent"),
    [
        ("Le chat est en conﬁance", "Le chat est en confiance"),  # "fi" ligature
        ("Ｌｅ ｃｈａｔ ｄｏｒｔ ｂｉｅｎ", "Le chat dort bien"),  # fullwidth
        ("Cafe\u0301 au lait chaud", "Café au lait chaud"),  # decomposed accent
    ],
)
def test_compatibility_forms_verify_as_their_nfkc_equivalent(typed, equivalent):
    assert typed != equivalent
    assert unicodedata.normalize("NFKC", typed) == equivalent
    account = Account(email="jeanne@example.org")
    account.set_password(typed)
    assert account.check_password(equivalent)
    account.set_password(equivalent)
    assert account.check_password(typed)
    assert not account.check_password(equivalent.upper())


def test_length_is_counted_after_normalisation():
    # 11 characters as typed, 12 once the ligature is expanded.
    assert len("Chat conﬁan") == 11
    assert unmet_rules("Chat conﬁan") == []
    assert unmet_rules("Chat conﬁa") == ["min_length"]


# --- properties -----------------------------------------------------------------------------

printable = st.characters(
    categories=["Lu", "Ll", "Nd", "Po", "Pd", "Sm", "Zs"], exclude_characters="\x00"
)


@given(st.text(printable, min_size=12, max_size=128))
def test_any_long_enough_mixed_case_uncommon_password_meets_every_rule(password):
    normalized = unicodedata.normalize("NFKC", password)
    assume(12 <= len(normalized) <= 128)
    assume(any(ch.isupper() for ch in normalized) and any(ch.islower() for ch in normalized))
    assume(normalized.lower().strip() not in COMMON)
    assert unmet_rules(password) == []


# Greek and Cyrillic letters and symbols share no character with PERSONAL.
foreign = st.characters(
    categories=["Lu", "Ll", "Po", "Zs"],
    min_codepoint=0x0391,
    max_codepoint=0x04FF,
) | st.sampled_from(" !?;:")


@given(
    st.characters(min_codepoint=0x0410, max_codepoint=0x042F),
    st.characters(min_codepoint=0x0430, max_codepoint=0x044F),
    st.text(foreign, min_size=10, max_size=100),
)
def test_a_password_sharing_nothing_with_the_members_data_is_accepted(upper, lower, rest):
    password = upper + lower + rest
    assume(len(unicodedata.normalize("NFKC", password)) <= 128)
    assert unmet_rules(password, PERSONAL) == []


@given(
    st.sampled_from(
        [
            "285057800608436",
            "2850578006084",
            "12051985",
            "dupont",
            "moreau",
            "jeanne",
            "marie",
            "camelia",
        ]
    ),
    st.text(printable, max_size=40),
    st.text(printable, max_size=40),
)
def test_any_password_containing_personal_data_is_refused(fragment, before, after):
    password = "Aa" + before + fragment.capitalize() + after
    assert "personal_data" in unmet_rules(password, PERSONAL)
