import io
from datetime import date

import pytest
import time_machine
from django.core.management import CommandError, call_command
from hypothesis import given
from hypothesis import strategies as st

from portal.audit.models import AuditEntry
from portal.members import services
from portal.members.models import Cpam, Member
from portal.members.nir import key_for
from tests.factories import CpamFactory, MemberFactory

HEADER = "nir,birth_date,last_name,first_names,sex,email,mobile_phone,postal_code,iban,cpam_code"
IBAN = "FR7630006000011234567890189"
TODAY = date(2025, 3, 14)


def nir15(number13: str) -> str:
    return number13 + key_for(number13)


NIR_A = nir15("1850575000001")
NIR_B = nir15("2900175000002")
NIR_C = nir15("1700913000003")


def csv_row(**values: str) -> str:
    """A valid row of the feed, with `values` replaced; sex follows the NIR."""
    first_digit = values.get("nir", NIR_A).strip()[:1]
    row = {
        "nir": NIR_A,
        "birth_date": "1985-05-12",
        "last_name": "Dupont",
        "first_names": "Jean",
        "sex": first_digit if first_digit in ("1", "2") else "1",
        "email": "jean@example.org",
        "mobile_phone": "06 12 34 56 78",
        "postal_code": "75002",
        "iban": IBAN,
        "cpam_code": "751",
    }
    row.update(values)
    return ",".join(row[column] for column in services.FEED_COLUMNS)


def write_feed(tmp_path, lines, *, header=HEADER, ending="\n", prefix=b"", name="feed.csv"):
    path = tmp_path / name
    text = ending.join([header, *lines]) + ending if header is not None else ending.join(lines)
    path.write_bytes(prefix + text.encode())
    return path


class Result:
    def __init__(self, stdout: str, stderr: str, error: CommandError | None):
        self.stdout, self.stderr, self.error = stdout, stderr, error

    @property
    def exit_code(self) -> int:
        return self.error.returncode if self.error else 0

    @property
    def errors(self) -> list[str]:
        return self.stderr.splitlines()


def run(path, *args) -> Result:
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        call_command("import_members", str(path), *args, stdout=stdout, stderr=stderr)
    except CommandError as exc:
        return Result(stdout.getvalue(), stderr.getvalue(), exc)
    return Result(stdout.getvalue(), stderr.getvalue(), None)


@pytest.fixture
def paris(db):
    return CpamFactory(code="751", name="Paris")


def test_valid_rows_are_imported_normalised(tmp_path, paris):
    path = write_feed(
        tmp_path,
        [
            csv_row(
                nir=" ".join([NIR_A[:1], NIR_A[1:3], NIR_A[3:5], NIR_A[5:13], NIR_A[13:]]),
                last_name="  Dupont ",
                first_names="Jean   Marc",
                iban="fr76 3000 6000 0112 3456 7890 189",
            ),
            csv_row(nir=NIR_B, email="", mobile_phone="", last_name="Martin", first_names="Léa"),
        ],
    )

    result = run(path)

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert "created=2 updated=0 unchanged=0 rejected=0" in result.stdout
    jean = Member.objects.get(nir=NIR_A)
    assert (jean.last_name, jean.first_names, jean.sex) == ("Dupont", "Jean Marc", "1")
    assert jean.birth_date == date(1985, 5, 12)
    assert jean.mobile_phone.as_e164 == "+33612345678"
    assert jean.iban == IBAN
    assert jean.cpam == paris
    lea = Member.objects.get(nir=NIR_B)
    assert (lea.email, lea.mobile_phone, lea.sex) == ("", "", "2")


@time_machine.travel(TODAY)
def test_bad_rows_are_reported_by_line_and_field_and_good_rows_kept(tmp_path, paris):
    path = write_feed(
        tmp_path,
        [
            csv_row(nir=NIR_A),
            csv_row(nir=NIR_B[:13] + "00"),
            "",
            csv_row(
                nir=NIR_C,
                birth_date="2025-03-15",
                last_name="",
                sex="2",
                email="pas-une-adresse",
                mobile_phone="01 45 45 45 45",
                postal_code="7500",
                iban="FR7630006000011234567890180",
                cpam_code="999",
            ),
            csv_row(nir=NIR_B),
        ],
    )

    result = run(path)

    assert result.exit_code == 1
    assert result.errors == [
        "line 3: nir: clé incorrecte",
        "line 5: birth_date: date dans le futur",
        "line 5: last_name: obligatoire",
        "line 5: sex: ne correspond pas au premier chiffre du NIR",
        "line 5: email: adresse e-mail invalide",
        "line 5: mobile_phone: numéro de mobile attendu",
        "line 5: postal_code: code postal français à 5 chiffres attendu",
        "line 5: iban: IBAN invalide",
        "line 5: cpam_code: CPAM inconnue",
    ]
    assert "created=2 updated=0 unchanged=0 rejected=2" in result.stdout
    assert set(Member.objects.values_list("nir", flat=True)) == {NIR_A, NIR_B}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"nir": "785057500000147"}, "nir: numéro provisoire (NIA/NNP) refusé"),
        ({"nir": "1850575000001"}, "nir: 13 chiffres et une clé de 2 chiffres attendus"),
        ({"nir": ""}, "nir: obligatoire"),
        ({"birth_date": "12/05/1985"}, "birth_date: date AAAA-MM-JJ attendue"),
        ({"birth_date": "1985-02-30"}, "birth_date: date inexistante"),
        ({"first_names": "J" * 201}, "first_names: 200 caractères au plus"),
        ({"sex": "M"}, "sex: 1 (homme) ou 2 (femme) attendu"),
        ({"mobile_phone": "0612"}, "mobile_phone: numéro de téléphone invalide"),
        ({"postal_code": "98000"}, "postal_code: code postal français à 5 chiffres attendu"),
        ({"cpam_code": "75"}, "cpam_code: code à 3 caractères attendu"),
        ({"last_name": "Du\x00pont"}, "last_name: caractère de contrôle interdit"),
    ],
)
def test_each_rule_is_reported(tmp_path, paris, values, expected):
    result = run(write_feed(tmp_path, [csv_row(**values)]))

    assert result.exit_code == 1
    assert result.errors == [f"line 2: {expected}"]
    assert not Member.objects.exists()


def test_overseas_mobile_number_is_read_in_its_region(tmp_path, db):
    CpamFactory(code="974", name="La Réunion")
    path = write_feed(
        tmp_path, [csv_row(mobile_phone="0692 12 34 56", postal_code="97400", cpam_code="974")]
    )

    assert run(path).exit_code == 0
    assert Member.objects.get().mobile_phone.as_e164 == "+262692123456"


def test_strict_imports_nothing_but_reports_every_bad_row(tmp_path, paris):
    path = write_feed(
        tmp_path,
        [
            csv_row(nir=NIR_A),
            csv_row(nir=NIR_B, postal_code="x"),
            csv_row(nir=NIR_C),
            csv_row(nir=NIR_C, cpam_code="999"),
        ],
    )

    result = run(path, "--strict", "--batch-size", "2")

    assert result.exit_code == 1
    assert result.errors == [
        "line 3: postal_code: code postal français à 5 chiffres attendu",
        "line 5: nir: NIR en double (déjà ligne 4)",
        "line 5: cpam_code: CPAM inconnue",
    ]
    assert "Mode strict" in str(result.error)
    assert "created=0 updated=0 unchanged=0 rejected=2" in result.stdout
    assert not Member.objects.exists()
    entry = AuditEntry.objects.get(action="members.import.completed")
    assert entry.data["rolled_back"] is True


def test_strict_with_only_good_rows_imports_them(tmp_path, paris):
    path = write_feed(tmp_path, [csv_row(nir=NIR_A), csv_row(nir=NIR_B)])

    result = run(path, "--strict")

    assert result.exit_code == 0
    assert Member.objects.count() == 2


def test_existing_member_is_updated_by_nir(tmp_path, paris):
    member = MemberFactory(nir=NIR_A, last_name="Durand", postal_address="1 rue de la Paix")
    unchanged = MemberFactory(
        nir=NIR_B,
        sex="2",
        birth_date=date(1985, 5, 12),
        last_name="Martin",
        first_names="Léa",
        email="lea@example.org",
        mobile_phone="+33612345678",
        postal_code="75002",
        iban=IBAN,
        cpam=paris,
    )
    path = write_feed(
        tmp_path,
        [
            csv_row(nir=NIR_A, last_name="Dupont", email="nouveau@example.org"),
            csv_row(nir=NIR_B, last_name="Martin", first_names="Léa", email="lea@example.org"),
        ],
    )

    result = run(path)

    assert result.exit_code == 0, result.stderr
    assert "created=0 updated=1 unchanged=1 rejected=0" in result.stdout
    member.refresh_from_db()
    assert (member.last_name, member.email) == ("Dupont", "nouveau@example.org")
    assert member.postal_address == "1 rue de la Paix"  # not in the feed: kept
    assert member.updated_at > member.created_at
    before = unchanged.updated_at
    unchanged.refresh_from_db()
    assert unchanged.updated_at == before
    assert Member.objects.count() == 2


@pytest.mark.parametrize("batch_size", ["1000", "1"])
def test_second_occurrence_of_a_nir_is_rejected(tmp_path, paris, batch_size):
    path = write_feed(
        tmp_path,
        [
            csv_row(nir=NIR_A, last_name="Premier"),
            csv_row(nir=NIR_B),
            csv_row(nir=NIR_A, last_name="Second"),
        ],
    )

    result = run(path, "--batch-size", batch_size)

    assert result.exit_code == 1
    assert result.errors == ["line 4: nir: NIR en double (déjà ligne 2)"]
    assert Member.objects.get(nir=NIR_A).last_name == "Premier"
    assert Member.objects.count() == 2


def test_duplicate_of_a_rejected_row_is_still_a_duplicate(tmp_path, paris):
    path = write_feed(tmp_path, [csv_row(postal_code="x"), csv_row()])

    result = run(path)

    assert result.errors == [
        "line 2: postal_code: code postal français à 5 chiffres attendu",
        "line 3: nir: NIR en double (déjà ligne 2)",
    ]
    assert not Member.objects.exists()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("nir,birthdate,last_name", "trouvé « nir,birthdate,last_name »"),
        (HEADER.replace("sex,email", "email,sex"), "En-tête incorrect"),
        (None, "la ligne 1 doit être"),
    ],
)
def test_bad_or_missing_header_imports_nothing(tmp_path, paris, header, message):
    path = write_feed(tmp_path, [csv_row()], header=header)

    result = run(path)

    assert result.exit_code == 2
    assert message in str(result.error)
    assert NIR_A not in str(result.error)  # a data row taken for a header is not echoed
    assert not Member.objects.exists()
    assert not AuditEntry.objects.exists()


def test_empty_file_and_missing_file_are_errors(tmp_path, paris):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")

    assert "Fichier vide" in str(run(empty).error)
    assert run(empty).exit_code == 2
    assert run(tmp_path / "absent.csv").exit_code == 2


def test_line_in_another_encoding_is_rejected_not_fatal(tmp_path, paris):
    path = tmp_path / "feed.csv"
    path.write_bytes(
        (HEADER + "\n" + csv_row(nir=NIR_A) + "\n").encode()
        + csv_row(nir=NIR_B, last_name="Bérénice").encode("latin-1")
        + b"\n"
        + (csv_row(nir=NIR_C) + "\n").encode()
    )

    result = run(path)

    assert result.exit_code == 1
    assert result.errors == ["line 3: row: encodage invalide (UTF-8 attendu)"]
    assert set(Member.objects.values_list("nir", flat=True)) == {NIR_A, NIR_C}


def test_header_in_utf16_is_a_clear_error(tmp_path, paris):
    path = tmp_path / "feed.csv"
    path.write_bytes((HEADER + "\n" + csv_row() + "\n").encode("utf-16"))

    result = run(path)

    assert result.exit_code == 2
    assert "UTF-8" in str(result.error)


def test_bom_crlf_blank_lines_and_whitespace_are_accepted(tmp_path, paris):
    path = write_feed(
        tmp_path,
        ["", "   ", csv_row(nir=NIR_A), ",,,,,,,,,", " , ".join(csv_row(nir=NIR_B).split(","))],
        header=" , ".join(HEADER.split(",")),
        ending="\r\n",
        prefix=b"\xef\xbb\xbf",
    )

    result = run(path)

    assert result.exit_code == 0, result.stderr
    assert Member.objects.get(nir=NIR_B).cpam == paris


def test_wrong_number_of_columns_and_broken_quotes(tmp_path, paris):
    path = write_feed(
        tmp_path,
        [
            csv_row(nir=NIR_A) + ",extra",
            "1850575000001,1985-05-12",
            '"Dupont,' + csv_row(nir=NIR_B),
            csv_row(nir=NIR_C),
        ],
    )

    result = run(path)

    assert result.errors == [
        "line 2: row: 11 colonnes au lieu de 10",
        "line 3: row: 2 colonnes au lieu de 10",
        "line 4: row: ligne CSV mal formée (guillemets)",
    ]
    assert list(Member.objects.values_list("nir", flat=True)) == [NIR_C]


def test_overlong_line_is_rejected_alone(tmp_path, paris):
    path = write_feed(tmp_path, ["x" * 10_000, csv_row()])

    result = run(path)

    assert result.errors == ["line 2: row: ligne trop longue"]
    assert Member.objects.count() == 1


def test_unknown_cpam_is_created_on_request(tmp_path, paris):
    path = write_feed(tmp_path, [csv_row(nir=NIR_A, cpam_code="131"), csv_row(nir=NIR_B)])

    result = run(path, "--create-cpams")

    assert result.exit_code == 0
    assert "cpams_created=1" in result.stdout
    assert Cpam.objects.get(code="131").name == "131"
    assert Member.objects.get(nir=NIR_A).cpam.code == "131"


def test_import_leaves_one_audit_entry_without_personal_data(tmp_path, paris):
    path = write_feed(tmp_path, [csv_row(nir=NIR_A), csv_row(nir=NIR_B, iban="x")])

    run(path)

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.member) == ("members.import.completed", "import", None)
    assert entry.data == {
        "file_name": "feed.csv",
        "rows": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "cpams_created": 0,
        "strict": False,
        "rolled_back": False,
    }
    assert NIR_A not in str(entry.data)
    assert IBAN not in str(entry.data)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(tmp_path, paris):
    path = write_feed(tmp_path, [csv_row()])
    terminal = FakeTerminal()

    call_command("import_members", str(path), stdout=io.StringIO(), stderr=terminal)

    assert "100%" in terminal.getvalue()
    Member.objects.all().delete()
    assert run(path).stderr == ""


def generated_rows(count: int, *, first: int = 0):
    for i in range(first, first + count):
        yield csv_row(nir=nir15(f"18505750{i:05d}"), last_name=f"Nom{i}")


def test_thousands_of_rows_in_batches(tmp_path, paris):
    path = write_feed(tmp_path, generated_rows(5_000))

    result = run(path)

    assert result.exit_code == 0
    assert "created=5000 updated=0 unchanged=0 rejected=0" in result.stdout
    assert Member.objects.count() == 5_000

    path = write_feed(tmp_path, [*generated_rows(1_000), *generated_rows(1_000, first=5_000)])
    result = run(path)

    assert "created=1000 updated=0 unchanged=1000 rejected=0" in result.stdout
    assert Member.objects.count() == 6_000


def test_rows_are_streamed_not_loaded_first(tmp_path, paris):
    """The first batch is written before the input is read further: memory
    follows the batch size, not the file size."""
    pulled = 0

    def rows():
        nonlocal pulled
        for line, values in enumerate(generated_rows(50), start=2):
            pulled += 1
            yield services.FeedRow(line, values=tuple(values.split(",")))

    seen_at_progress = []
    report = services.members_import(
        rows=rows(),
        strict=False,
        source_name="gen",
        batch_size=10,
        on_progress=lambda done: seen_at_progress.append((done, pulled)),
    )

    assert report.created == 50
    assert seen_at_progress[0] == (10, 10)


# The row parser, on its own


@st.composite
def valid_rows(draw):
    sex = draw(st.sampled_from("12"))
    number = (
        sex
        + f"{draw(st.integers(0, 99)):02d}"
        + f"{draw(st.integers(1, 12)):02d}"
        + draw(st.sampled_from(["01", "2A", "2B", "75", "95", "99"]))
        + f"{draw(st.integers(1, 999)):03d}"
        + f"{draw(st.integers(1, 999)):03d}"
    )
    nir = number + key_for(number)
    spaced = "".join(char + draw(st.sampled_from(["", " "])) for char in nir)
    name = st.text(st.characters(categories=["L"]), min_size=1, max_size=40)
    padding = st.sampled_from(["", " ", "  "])
    values = {
        "nir": spaced,
        "birth_date": draw(st.dates(date(1900, 1, 1), TODAY)).isoformat(),
        "last_name": draw(padding) + draw(name) + draw(padding),
        "first_names": draw(name) + draw(padding),
        "sex": sex,
        "email": draw(st.sampled_from(["", "a@example.org", "jean.dupont+ameli@example.fr"])),
        "mobile_phone": draw(st.sampled_from(["", "0612345678", "+33 7 81 23 45 67"])),
        "postal_code": draw(st.sampled_from(["01000", "20000", "75002", "95880", "97400"])),
        "iban": draw(st.sampled_from([IBAN, IBAN.lower(), "FR76 3000 6000 0112 3456 7890 189"])),
        "cpam_code": draw(st.sampled_from(["751", "131", "2a1"])),
    }
    return nir, values


@given(valid_rows())
def test_valid_rows_parse_to_normalised_values(drawn):
    nir, values = drawn

    parsed = services.member_row_parse(list(values.values()), today=TODAY)

    assert parsed.errors == ()
    member = parsed.member
    assert member.nir == nir == parsed.nir
    assert member.sex == nir[0]
    assert member.last_name == " ".join(values["last_name"].split())
    assert member.iban == IBAN
    assert member.mobile_phone in ("", "+33612345678", "+33781234567")
    assert member.cpam_code == values["cpam_code"].upper()


@given(valid_rows(), st.integers(1, 96))
def test_a_wrong_key_is_always_refused(drawn, shift):
    nir, values = drawn
    values["nir"] = nir[:13] + f"{(int(nir[13:]) - 1 + shift) % 97 + 1:02d}"

    parsed = services.member_row_parse(list(values.values()), today=TODAY)

    assert parsed.member is None
    assert parsed.errors == (services.FieldError("nir", "clé incorrecte"),)


@given(st.lists(st.text(), min_size=10, max_size=10))
def test_any_text_gives_errors_never_an_exception(values):
    parsed = services.member_row_parse(values, today=TODAY)

    assert (parsed.member is None) == bool(parsed.errors)
    assert {error.field for error in parsed.errors} <= set(services.FEED_COLUMNS)
