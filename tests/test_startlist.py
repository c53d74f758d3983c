"""Start lists: reading organisers' CSV files (encodings, delimiters, column names, errors) and snapping OCR
reads of bib numbers to the listed bibs."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from jerseynum.photos.startlist import (
    _BIB_KEYS,
    _CATEGORY_KEYS,
    _CONFUSED_WITH,
    _FIRST_NAME_KEYS,
    _LAST_NAME_KEYS,
    _NAME_KEYS,
    CONFUSABLE_DIGITS,
    Entrant,
    Snap,
    StartList,
    StartListError,
    read_start_list,
)


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "start.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# --- reading -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bib_header", "name_header", "category_header"), [
    ("Bib", "Name", "Category"),
    ("BIB NO", "full name", "cat"),
    ("bib_number", "Runner", "Age Group"),
    ("Bib #", "ATHLETE", "division"),
    ("Race Number", "Participant", "Class"),
    ("Startnummer", "Full_Name", "Gender Category"),
    ("Dossard", "name", "age-group"),
    ("Dorsal", "Athlete Name", "CATEGORY"),
    ("No", "Name", "Cat."),
    ("Number", "Name", "Category"),
    (" bib  no. ", " Runner ", "Age  Group"),
    ("Bib-Nr", "Name", "Category"),
    ("N°", "Name", "Category"),
    ("Numéro", "Name", "Catégorie"),
])
def test_header_variants(tmp_path: Path, bib_header: str, name_header: str, category_header: str) -> None:
    path = write(tmp_path, f"{bib_header},{name_header},{category_header}\n0042,Anna Berg,W35\n7,Bo Li,M40\n")
    assert read_start_list(path) == [Entrant("0042", "Anna Berg", "W35"), Entrant("7", "Bo Li", "M40")]


def test_header_sets_do_not_overlap() -> None:
    key_sets = [_BIB_KEYS, _NAME_KEYS, _FIRST_NAME_KEYS, _LAST_NAME_KEYS, _CATEGORY_KEYS]
    assert sum(map(len, key_sets)) == len(set().union(*key_sets))


@pytest.mark.parametrize(("first", "last"), [("First Name", "Last Name"), ("firstname", "lastname"),
                                             ("Given Name", "Surname"), ("Vorname", "Nachname"),
                                             ("Prénom", "Nom"), ("PRENOM", "family_name")])
def test_first_and_last_name_columns_are_combined(tmp_path: Path, first: str, last: str) -> None:
    path = write(tmp_path, f"{last},Bib,{first}\nBerg,12,Anna\nLi,13,\n")
    assert read_start_list(path) == [Entrant("12", "Anna Berg"), Entrant("13", "Li")]


def test_full_name_column_wins_over_first_and_last(tmp_path: Path) -> None:
    path = write(tmp_path, "Bib,First Name,Last Name,Name\n12,Anna,Berg,Anna-Maria Berg\n")
    assert read_start_list(path) == [Entrant("12", "Anna-Maria Berg")]


@pytest.mark.parametrize(("first", "name"), [("Vorname", "Name"), ("First Name", "Name")])
def test_beside_a_first_name_column_the_name_column_is_the_surname(tmp_path: Path, first: str, name: str) -> None:
    path = write(tmp_path, f"Startnummer;{first};{name}\n101;Hans;Müller\n102;;Li\n")
    assert read_start_list(path) == [Entrant("101", "Hans Müller"), Entrant("102", "Li")]


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_delimiters(tmp_path: Path, delimiter: str) -> None:
    rows = [["Bib", "Name", "Category"], ["101", "Berg, Anna", "W35"], ["102", "Li; Bo", "M40"]]
    text = "\n".join(delimiter.join(f'"{cell}"' if delimiter in cell or "," in cell or ";" in cell else cell
                                    for cell in row) for row in rows) + "\n"
    path = write(tmp_path, text)
    assert read_start_list(path) == [Entrant("101", "Berg, Anna", "W35"), Entrant("102", "Li; Bo", "M40")]


def test_semicolon_file_with_commas_in_names(tmp_path: Path) -> None:
    # What Excel writes on a German or French system: semicolons, unquoted commas in the data.
    path = write(tmp_path, "Startnummer;Name;Kategorie\r\n5;Müller, Jörg;M50\r\n6;Roth, Eva;W20\r\n")
    assert read_start_list(path) == [Entrant("5", "Müller, Jörg", "M50"), Entrant("6", "Roth, Eva", "W20")]


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_excel_sep_line(tmp_path: Path, delimiter: str) -> None:
    path = write(tmp_path, f"sep={delimiter}\r\nBib{delimiter}Name\r\n5{delimiter}Anna, B.\r\n6\r\n")
    assert read_start_list(path) == [Entrant("5", "Anna" if delimiter == "," else "Anna, B."), Entrant("6")]


def test_utf8_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffBib,Name\n1,Zoë Ångström\n", encoding="utf-8")
    assert read_start_list(path) == [Entrant("1", "Zoë Ångström")]


def test_cp1252_name_with_accent(tmp_path: Path) -> None:
    path = write(tmp_path, "Dossard;Nom;Prénom\n12;Lefèvre;Hélène\n13;Œuvray;Zoé\n", encoding="cp1252")
    assert read_start_list(path) == [Entrant("12", "Hélène Lefèvre"), Entrant("13", "Zoé Œuvray")]


def test_latin1_where_cp1252_cannot_decode(tmp_path: Path) -> None:
    path = tmp_path / "start.csv"
    path.write_bytes(b"Bib,Name\n1,Ren\xe9\x81\n")  # 0x81 is undefined in cp1252
    assert read_start_list(path) == [Entrant("1", "René\x81")]


def test_utf16_excel_unicode_text(tmp_path: Path) -> None:
    path = write(tmp_path, "Bib\tName\n1\tAnna\n", encoding="utf-16")
    assert read_start_list(path) == [Entrant("1", "Anna")]


def test_blank_rows_unknown_columns_and_printed_bibs(tmp_path: Path) -> None:
    text = "\n Bib , Club ,Name\n\nT2182,Rovers,Anna\n,,\n００７,,Bo\n0264 ,x,  Cy  \n"
    assert read_start_list(write(tmp_path, text)) == [Entrant("2182", "Anna"), Entrant("007", "Bo"),
                                                      Entrant("0264", "Cy")]


def test_bibs_with_letters_are_matched_on_their_digits_and_said_so(tmp_path: Path, caplog) -> None:
    assert read_start_list(write(tmp_path, "Bib\nT2182\n７\nA-12\n")) == [Entrant("2182"), Entrant("7"), Entrant("12")]
    assert "2 bibs have more than digits (e.g. 'T2182'): they are matched on their digits (2182)" in caplog.text
    caplog.clear()
    read_start_list(write(tmp_path, "Bib\n０２６４\n 12 \n"))  # full-width digits are digits
    assert "more than digits" not in caplog.text


def test_bibs_a_spreadsheet_wrote_as_numbers(tmp_path: Path, caplog) -> None:
    # pandas and Excel write a number column as 2605.0: the bib is 2605, not 26050
    assert read_start_list(write(tmp_path, "Bib,Name\n2605.0,Ada\n58.00,Bo\n0264,Cy\n")) == [
        Entrant("2605", "Ada"), Entrant("58", "Bo"), Entrant("0264", "Cy")]  # fmt: skip
    assert "more than digits" not in caplog.text
    for reformatted in ("2605.5", "2.605E+03", "2.6E3"):
        with pytest.raises(StartListError, match=f"row 2: bib '{re.escape(reformatted)}' is a number a spreadsheet"):
            read_start_list(write(tmp_path, f"Bib\n{reformatted}\n"))


def test_bib_only_file(tmp_path: Path) -> None:
    assert read_start_list(write(tmp_path, "Bib\n1\n22\n")) == [Entrant("1"), Entrant("22")]


# --- errors --------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(StartListError, match="not found") as error:
        read_start_list(path)
    assert str(path) in str(error.value)


def test_a_folder_is_not_a_start_list(tmp_path: Path) -> None:
    with pytest.raises(StartListError, match="cannot read start list"):
        read_start_list(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n", " \r\n , \n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(StartListError, match="is empty") as error:
        read_start_list(path)
    assert str(path) in str(error.value)


def test_header_without_entrants(tmp_path: Path) -> None:
    with pytest.raises(StartListError, match="no entrants"):
        read_start_list(write(tmp_path, "Bib,Name\n\n"))


def test_excel_workbook(tmp_path: Path) -> None:
    path = tmp_path / "start.xlsx"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(StartListError, match="Excel workbook"):
        read_start_list(path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "start.csv"
    path.write_bytes("Bib\tName\n1\tAnna\n".encode("utf-16-le"))  # UTF-16 without its BOM
    with pytest.raises(StartListError, match="not a CSV text file"):
        read_start_list(path)


def test_unclosed_quote_names_the_row(tmp_path: Path) -> None:
    # The quote swallows every later row until the field exceeds what the csv module accepts.
    path = write(tmp_path, 'Bib,Name\n1,"Anna\n' + "2,Bo\n" * 30_000)
    with pytest.raises(StartListError, match="row 2: not readable as CSV"):
        read_start_list(path)


def test_no_bib_column_names_headers_found_and_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "Runner,Age Group,Phone Number\nAnna,W35,123\n")
    with pytest.raises(StartListError, match="no bib-number column") as error:
        read_start_list(path)
    message = str(error.value)
    assert "'Runner', 'Age Group', 'Phone Number'" in message
    assert "Bib, Bib No" in message and "Startnummer" in message and str(path) in message


@pytest.mark.parametrize(("header", "named"), [("Bib,Name,Number", "'Bib' and 'Number'"),
                                               ("Bib No,bib_no", "'Bib No' and 'bib_no'")])
def test_ambiguous_bib_column(tmp_path: Path, header: str, named: str) -> None:
    with pytest.raises(StartListError, match="could each be the bib number column") as error:
        read_start_list(write(tmp_path, f"{header}\n1,2,3\n"))
    assert named in str(error.value)


def test_ambiguous_name_column(tmp_path: Path) -> None:
    with pytest.raises(StartListError, match="'Name' and 'Runner' could each be the name column"):
        read_start_list(write(tmp_path, "Bib,Name,Runner\n1,A,B\n"))


@pytest.mark.parametrize(("bib", "problem"), [("DNS", "bib 'DNS' has no digits"), ("", "'Bib' cell is empty")])
def test_bib_without_digits_names_the_row(tmp_path: Path, bib: str, problem: str) -> None:
    path = write(tmp_path, f"Bib,Name\n1,Anna\n\n{bib},Bo\n")
    with pytest.raises(StartListError, match="row 4") as error:
        read_start_list(path)
    assert problem in str(error.value)


def test_row_shorter_than_header_has_no_bib(tmp_path: Path) -> None:
    with pytest.raises(StartListError, match="row 3.*'Bib' cell is empty"):
        read_start_list(write(tmp_path, "Name,Category,Bib\nAnna,W35,1\nBo,M40\n"))


def test_duplicate_bib_names_both_rows(tmp_path: Path) -> None:
    with pytest.raises(StartListError, match="bib 12 is listed twice, rows 2 and 4"):
        read_start_list(write(tmp_path, "Bib,Name\n12,Anna\n13,Bo\n12,Cy\n"))


def test_different_printed_bibs_with_the_same_digits_are_duplicates(tmp_path: Path) -> None:
    with pytest.raises(StartListError, match=r"bib 2182 is listed twice, rows 2 \('T2182'\) and 3 \('2182'\)"):
        read_start_list(write(tmp_path, "Bib\nT2182\n2182\n"))


def test_start_list_error_is_a_value_error() -> None:
    assert issubclass(StartListError, ValueError)


def test_start_list_refuses_bad_entrants() -> None:
    with pytest.raises(ValueError, match="bib 5 is listed twice"):
        StartList([Entrant("5"), Entrant("5")])
    with pytest.raises(ValueError, match="not ASCII digits"):
        StartList([Entrant("T5")])


# --- the start list ------------------------------------------------------------------------------------------


def test_from_csv_and_lookup(tmp_path: Path) -> None:
    start_list = StartList.from_csv(write(tmp_path, "Bib;Name;Cat\n0042;Anna Berg;W35\n7;Bo Li;M40\n"))
    assert start_list.bibs == {"0042", "7"}
    assert start_list.entrant("0042") == Entrant("0042", "Anna Berg", "W35")
    assert start_list.entrant("42") is None


def test_find_name_ignores_case_and_accents() -> None:
    anna, jorg, helene = Entrant("1", "Anna Berg"), Entrant("2", "Jörg Müller"), Entrant("3", "Hélène LEFÈVRE")
    start_list = StartList([anna, jorg, helene, Entrant("4")])
    assert start_list.find_name("muller") == [jorg]
    assert start_list.find_name("MÜLLER jorg") == [jorg]  # every word, any order
    assert start_list.find_name("helene lefevre") == [helene]
    assert start_list.find_name("e") == [anna, jorg, helene]  # a substring, in start-list order
    assert start_list.find_name("anna muller") == []
    assert start_list.find_name("  ") == []


def test_confusion_table_is_symmetric_and_as_specified() -> None:
    assert len(set(map(frozenset, CONFUSABLE_DIGITS))) == 12
    for a, b in CONFUSABLE_DIGITS:
        assert b in _CONFUSED_WITH[a] and a in _CONFUSED_WITH[b]
    assert sum(map(len, _CONFUSED_WITH.values())) == 2 * len(CONFUSABLE_DIGITS)


def test_listed_read() -> None:
    start_list = StartList([Entrant("3638"), Entrant("0264")])
    assert start_list.snap("3638") == Snap("3638", "listed", "read 3638: on the start list")
    assert start_list.snap("０２６４").number == "0264"  # Unicode digits as ASCII


@pytest.mark.parametrize(("a", "b"), CONFUSABLE_DIGITS)
def test_each_confusion_snaps_both_ways(a: str, b: str) -> None:
    for printed, read in ((a, b), (b, a)):
        bib = f"2{printed}2"
        snap = StartList([Entrant(bib)]).snap(f"2{read}2")
        assert snap == Snap(bib, "snapped", f"read 2{read}2: {read} read for {printed} at position 2 ({bib})")


def test_confusion_at_the_first_position() -> None:
    assert StartList([Entrant("3638")]).snap("8638") == Snap("3638", "snapped",
                                                             "read 8638: 8 read for 3 at position 1 (3638)")


def test_a_digit_read_surely_is_no_confusion() -> None:
    """An unlisted runner's bib read surely (10240 where 10246 is listed) is rejected, not made another's."""
    start_list = StartList([Entrant("10246")])
    sure = start_list.snap("10240", (1.0, 1.0, 1.0, 1.0, 0.999))
    assert sure == Snap(None, "rejected", "read 10240: not on the start list, and no confusion: its 0 at position 5 "
                                          "was read 1.00 sure, not 6 (10246)")
    assert start_list.snap("10240", (1.0, 1.0, 1.0, 1.0, 0.9)).number == "10246"  # an unsure 0 may be a 6
    # Only the digit a snap changes counts; a missing digit has no confidence to ask.
    assert start_list.snap("10240", (0.5, 1.0, 1.0, 1.0, 0.9)).number == "10246"
    assert start_list.snap("1024", (1.0, 1.0, 1.0, 1.0)).number == "10246"
    assert start_list.snap("10240", (1.0, 1.0)).number == "10246"  # confidences of another text: not used


def test_a_sure_digit_leaves_the_one_listed_bib_that_a_confusion_elsewhere_reaches() -> None:
    start_list = StartList([Entrant("3638"), Entrant("8688")])  # 8638: a 3 read as 8, or a 6 read as 8
    assert start_list.snap("8638").status == "rejected"
    assert start_list.snap("8638", (0.6, 1.0, 1.0, 1.0)) == Snap("3638", "snapped",
                                                                 "read 8638: 8 read for 3 at position 1 (3638)")


def test_unconfusable_digits_do_not_snap() -> None:
    # 3 and 6 are not a confusable pair; nor are 1 and 2.
    start_list = StartList([Entrant("3638")])
    assert start_list.snap("6638") == Snap(None, "rejected", "read 6638: not on the start list")
    assert start_list.snap("3628").status == "rejected"


def test_missing_first_and_last_digit() -> None:
    start_list = StartList([Entrant("10264"), Entrant("0917")])
    assert start_list.snap("0264") == Snap("10264", "snapped", "read 0264: first digit missing (10264)")
    assert start_list.snap("1026") == Snap("10264", "snapped", "read 1026: last digit missing (10264)")
    assert start_list.snap("917") == Snap("0917", "snapped", "read 917: first digit missing (0917)")
    assert start_list.snap("091") == Snap("0917", "snapped", "read 091: last digit missing (0917)")


def test_two_missing_digits_or_a_missing_middle_digit_is_rejected() -> None:
    start_list = StartList([Entrant("10264")])
    for read in ("026", "102", "1264", "1024"):
        assert start_list.snap(read).status == "rejected", read


def test_two_reachable_bibs_are_rejected_naming_them() -> None:
    start_list = StartList([Entrant("10264"), Entrant("10268"), Entrant("5555")])
    assert start_list.snap("1026") == Snap(None, "rejected", "read 1026: 2 listed bibs one edit away: "
                                           "10264 (last digit missing), 10268 (last digit missing)")
    # A confusion and a missing digit that reach different bibs are just as ambiguous.
    start_list = StartList([Entrant("1026"), Entrant("70264")])
    assert start_list.snap("7026") == Snap(None, "rejected", "read 7026: 2 listed bibs one edit away: "
                                           "1026 (7 read for 1 at position 1), 70264 (last digit missing)")


def test_many_reachable_bibs_are_counted_not_all_listed() -> None:
    start_list = StartList([Entrant(f"1026{d}") for d in "0123456789"])
    snap = start_list.snap("1026")
    assert snap.status == "rejected"
    assert snap.reason.startswith("read 1026: 10 listed bibs one edit away: 10260 (last digit missing), ")
    assert snap.reason.endswith(" and 5 more")


def test_one_bib_reached_two_ways_is_one_bib() -> None:
    assert StartList([Entrant("11")]).snap("1") == Snap("11", "snapped", "read 1: first digit missing (11)")


def test_far_longer_and_empty_reads_are_rejected() -> None:
    start_list = StartList([Entrant("3638"), Entrant("12")])
    assert start_list.snap("4444") == Snap(None, "rejected", "read 4444: not on the start list")
    assert start_list.snap("36381") == Snap(None, "rejected", "read 36381: longer than every bib on the start list")
    assert start_list.snap("33638").status == "rejected"  # an inserted digit is never snapped
    assert start_list.snap("") == Snap(None, "rejected", "read '': no digits")
    assert StartList([]).snap("12") == Snap(None, "rejected", "read 12: not on the start list")


def _reference_snap(bibs: set[str], read: str) -> tuple[str, set[str]]:
    """Snapping worked out from the read's side (undo each possible edit), to check the module's index."""
    if read in bibs:
        return "listed", {read}
    sources = {read[:i] + other + read[i + 1:] for i, digit in enumerate(read) for other in _CONFUSED_WITH[digit]}
    sources |= {digit + read for digit in "0123456789"} | {read + digit for digit in "0123456789"}
    reached = sources & bibs
    return ("snapped" if len(reached) == 1 else "rejected"), reached


def test_a_large_race() -> None:
    rng = random.Random(20240607)
    bibs = {str(n) for n in rng.sample(range(1, 1_000_000), 50_000)} | {f"0{n}" for n in rng.sample(range(100), 20)}
    start_list = StartList(Entrant(bib) for bib in bibs)
    listed = sorted(bibs)
    reads = []
    for _ in range(1000):
        bib = rng.choice(listed)
        kind = rng.randrange(4)
        if kind == 0:
            reads.append(bib)
        elif kind == 1:
            i = rng.randrange(len(bib))
            reads.append(bib[:i] + rng.choice(_CONFUSED_WITH[bib[i]]) + bib[i + 1:])
        elif kind == 2:
            reads.append(rng.choice([bib[1:], bib[:-1]]) or bib)
        else:
            reads.append(str(rng.randrange(10_000_000)))
    statuses = []
    for read in reads:
        snap = start_list.snap(read)
        status, reached = _reference_snap(bibs, read)
        assert snap.status == status, (read, snap, reached)
        assert snap.number == (reached.pop() if status != "rejected" else None), (read, snap)
        statuses.append("ambiguous" if "one edit away" in snap.reason else snap.status)
    assert all(statuses.count(status) > 50 for status in ("listed", "snapped", "ambiguous", "rejected")), statuses


def test_a_read_with_leading_zeros_matches_the_bib_a_spreadsheet_listed_without_them():
    snap = StartList([Entrant("891")]).snap("0891")
    assert (snap.number, snap.status) == ("891", "listed") and "leading zeros" in snap.reason


def test_a_snap_is_likelier_chance_the_denser_the_list_is_among_numbers_of_its_length() -> None:
    sparse = StartList([Entrant("30793"), Entrant("21317")])
    # each bib reaches its 5-digit misreads (confused digits) and two 4-digit ones (an edge digit missing)
    assert sparse.snap_chance("30798") == len({r for r in sparse._reach if len(r) == 5}) / 10**5 < 0.001
    dense = StartList([Entrant(str(bib)) for bib in range(100, 1000, 3)])  # 300 of the 900 three-digit bibs
    assert dense.snap_chance("101") > 0.3
    assert dense.snap("101").status in ("snapped", "rejected")  # a read there says little about which bib
