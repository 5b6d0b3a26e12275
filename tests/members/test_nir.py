"""The NIR parser: every valid shape passes, every typo is caught, each refusal has its code."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.members.nir import Nir, NirError, key_for, mask, parse, parse_login

ALPHABET = "0123456789AB"


def reference_key(number13: str) -> str:
    """The key computed from the rule itself (not through the module under test)."""
    digits = (
        number13[:5] + {"2A": "19", "2B": "18"}.get(number13[5:7], number13[5:7]) + number13[7:]
    )
    return f"{97 - int(digits) % 97:02d}"


def group(nir15: str) -> str:
    """The standard printed grouping: 1 85 05 78 006 084 36."""
    cuts = [0, 1, 3, 5, 7, 10, 13, 15]
    return " ".join(nir15[a:b] for a, b in zip(cuts, cuts[1:], strict=False))


def two_digits(low: int, high: int):
    return st.integers(low, high).map(lambda n: f"{n:02d}")


def three_digits(low: int, high: int):
    return st.integers(low, high).map(lambda n: f"{n:03d}")


months = st.one_of(two_digits(1, 12), two_digits(20, 42), two_digits(50, 99))
# The department and the commune together take 5 characters: 2+3 in metropolitan
# France and Corsica, 3+2 overseas (97x), 99 + a country code for people born abroad.
place = st.one_of(
    st.tuples(two_digits(1, 95), three_digits(1, 999)).map("".join),
    st.tuples(st.sampled_from(["2A", "2B"]), three_digits(1, 999)).map("".join),
    st.tuples(st.sampled_from(["971", "972", "973", "974", "975", "976"]), two_digits(1, 99)).map(
        "".join
    ),
    st.tuples(st.just("99"), three_digits(100, 999)).map("".join),
)
valid_nir13 = st.tuples(
    st.sampled_from("12"), two_digits(0, 99), months, place, three_digits(1, 999)
).map("".join)
valid_nir15 = valid_nir13.map(lambda n: n + reference_key(n))


# --- property-based ------------------------------------------------------------


@given(valid_nir15)
def test_every_valid_nir_is_accepted_with_its_key(nir):
    parsed = parse(nir, require_key=True)
    assert parsed == Nir(number=nir[:13], key=nir[13:])
    assert parsed.full == nir


@given(valid_nir15)
def test_every_valid_nir_is_accepted_in_the_printed_grouping(nir):
    assert parse(group(nir), require_key=True).full == nir


@given(valid_nir15, st.data())
def test_spaces_anywhere_are_ignored(nir, data):
    spaces = data.draw(st.lists(st.sampled_from([" ", "  ", "\t"]), min_size=16, max_size=16))
    spaced = "".join(space + char for space, char in zip(spaces, nir + " ", strict=True))
    assert parse(spaced, require_key=True).full == nir


@given(valid_nir13)
def test_every_valid_13_character_login_form_is_accepted_without_key(number):
    assert parse(number, require_key=False) == Nir(number=number, key=None)
    assert parse_login(group(number + "00")[:-3]).number == number


@given(valid_nir15)
def test_the_login_form_also_takes_the_15_characters_and_checks_the_key(nir):
    assert parse_login(nir) == Nir(number=nir[:13], key=nir[13:])


@given(valid_nir15)
def test_every_single_character_substitution_is_refused(nir):
    for position, original in enumerate(nir):
        for replacement in ALPHABET:
            if replacement == original:
                continue
            typo = nir[:position] + replacement + nir[position + 1 :]
            with pytest.raises(NirError):
                parse(typo, require_key=True)


@given(valid_nir13)
def test_key_for_follows_the_rule(number):
    assert key_for(number) == reference_key(number)


# --- examples: accepted forms --------------------------------------------------


def test_known_valid_numbers():
    # The first comes from python-stdnum's documentation (born abroad, department 99).
    assert parse("295109912611193", require_key=True).full == "295109912611193"
    assert parse("2 95 10 99 126 111 93", require_key=True).number == "2951099126111"


def test_corsica_lowercase_and_other_separators_are_normalised():
    number = "185052A006084"
    full = number + reference_key(number)
    assert parse(full.lower(), require_key=True).full == full
    assert parse(f"1.85.05.2A.006.084.{full[13:]}", require_key=True).full == full
    assert parse(f"1-85-05-2a-006-084-{full[13:]}", require_key=True).full == full


def test_parsed_nir_exposes_sex_and_full():
    parsed = parse("2 85 05 78 006 084", require_key=False)
    assert parsed.sex == "2"
    assert parsed.key is None
    assert parsed.full == "2850578006084"


# --- examples: each refusal code ---------------------------------------------


VALID13 = "1850578006084"
VALID15 = VALID13 + reference_key(VALID13)


@pytest.mark.parametrize("value", ["", "   ", " . - ", None])
def test_required(value):
    with pytest.raises(NirError) as exc:
        parse(value, require_key=False)
    assert exc.value.code == "required"


@pytest.mark.parametrize(
    ("value", "require_key"),
    [
        (VALID13, True),  # the key is required here
        (VALID13[:12], False),
        (VALID15[:14], False),
        (VALID15 + "1", False),
        ("18505780060X4", False),  # a letter outside the department
        ("185052C006084", False),  # only 2A and 2B
        ("1850578006084AB", False),
        (VALID15 + "X", False),
    ],
)
def test_format(value, require_key):
    with pytest.raises(NirError) as exc:
        parse(value, require_key=require_key)
    assert exc.value.code == "format"


def test_key():
    wrong = f"{(int(VALID15[13:]) % 97) + 1:02d}"
    for value, require_key in [(VALID13 + wrong, True), (VALID13 + wrong, False)]:
        with pytest.raises(NirError) as exc:
            parse(value, require_key=require_key)
        assert exc.value.code == "key"


def test_key_uses_19_for_2a_and_18_for_2b():
    # Same digits, departments 2A/19 and 2B/18: the keys must match pairwise.
    assert key_for("185052A006084") == key_for("1850519006084")
    assert key_for("185052B006084") == key_for("1850518006084")
    assert key_for("185052A006084") != key_for("185052B006084")
    # Keys written with a 19/18 department are refused for the 2A/2B number.
    with pytest.raises(NirError) as exc:
        parse("185052A006084" + key_for("1850520006084"), require_key=True)
    assert exc.value.code == "key"


@pytest.mark.parametrize("sex", "034569")
def test_sex(sex):
    number = sex + VALID13[1:]
    with pytest.raises(NirError) as exc:
        parse(number + reference_key(number), require_key=True)
    assert exc.value.code == "sex"


@pytest.mark.parametrize("sex", "78")
@pytest.mark.parametrize("require_key", [True, False])
def test_temporary_numbers_are_refused_with_their_own_code(sex, require_key):
    number = sex + VALID13[1:]
    with pytest.raises(NirError) as exc:
        parse(number + reference_key(number) if require_key else number, require_key=require_key)
    assert exc.value.code == "temporary"
    assert "36 46" in exc.value.message


@pytest.mark.parametrize("month", ["00", "13", "19", "43", "49"])
def test_month(month):
    number = VALID13[:3] + month + VALID13[5:]
    with pytest.raises(NirError) as exc:
        parse(number + reference_key(number), require_key=True)
    assert exc.value.code == "month"


@pytest.mark.parametrize("month", ["01", "12", "20", "42", "50", "99"])
def test_month_bounds_accepted(month):
    number = VALID13[:3] + month + VALID13[5:]
    assert parse(number + reference_key(number), require_key=True).number == number


@pytest.mark.parametrize("department", ["00", "96", "98"])
def test_department(department):
    number = VALID13[:5] + department + VALID13[7:]
    with pytest.raises(NirError) as exc:
        parse(number + reference_key(number), require_key=True)
    assert exc.value.code == "department"


@pytest.mark.parametrize("department", ["01", "20", "95", "2A", "2B", "97", "99"])
def test_department_bounds_accepted(department):
    number = VALID13[:5] + department + VALID13[7:]
    assert parse(number + reference_key(number), require_key=True).number == number


def test_errors_carry_a_french_message_and_are_value_errors():
    with pytest.raises(ValueError, match="key") as exc:
        parse(VALID13 + "00", require_key=True)
    assert exc.value.message == str(NirError.MESSAGES["key"])
    assert "clé" in exc.value.message


# --- mask and key_for -----------------------------------------------------------


def test_mask_hides_all_but_the_last_four_of_the_13():
    assert mask(VALID13) == "•••••••••6084"
    assert mask(VALID15) == "•••••••••6084"  # the key is never shown
    assert mask("1 85 05 78 006 084 " + VALID15[13:]) == "•••••••••6084"


def test_mask_keeps_the_corsican_department_hidden():
    assert mask("2 85 05 2a 006 084") == "•••••••••6084"


def test_key_for_known_values():
    assert key_for("2951099126111") == "93"
    assert key_for(VALID13) == reference_key(VALID13)


def test_key_for_is_two_digits_with_leading_zero_and_97_for_multiples():
    low = next(f"1{n:012d}" for n in range(10**6) if int(f"1{n:012d}") % 97 == 92)
    assert key_for(low) == "05"
    multiple = next(f"1{n:012d}" for n in range(10**6) if int(f"1{n:012d}") % 97 == 0)
    assert key_for(multiple) == "97"
