"""A race organiser's start list (CSV), used to fix OCR confusions in the bib numbers read in race photos.

A bib reader confuses look-alike printed digits (a 3 read as an 8) and misses a digit at the edge of a bib
that is folded or cut off by the photo. Only the bibs on the start list were worn, so a read that is not on
the list but is one such confusion away from exactly one listed bib is almost surely that bib: `StartList.snap`
says so, and why. Nothing is lost: a read that cannot be snapped is "rejected" only in the sense that no
listed bib is given for it; the caller stores the read as it was, so the photo is still found by it.

Organisers export start lists from Excel and timing software, so `read_start_list` accepts their usual
encodings, delimiters and column names, and every problem with the file is a `StartListError` that names the
file, the row and what was expected.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from jerseynum.photos.index import bib_digits

log = logging.getLogger(__name__)

# A bib column that a spreadsheet or pandas took for numbers: "2605.0", "2.605E+03".
_SPREADSHEET_NUMBER = re.compile(r"(?P<whole>\d+)\.(?P<fraction>\d+)(?P<exponent>[eE][+-]?\d+)?")

# The digit pairs OCR engines confuse on printed digits (each pair either way round).
CONFUSABLE_DIGITS = ("68", "17", "38", "08", "56", "35", "89", "06", "09", "41", "27", "59")
_CONFUSED_WITH = {digit: "".join(sorted(pair.replace(digit, "") for pair in CONFUSABLE_DIGITS if digit in pair))
                  for digit in "0123456789"}

# Column names as organisers write them; matched by `_header_key` (case, accents, spaces, _-.# ignored).
BIB_HEADERS = ("Bib", "Bib No", "Bib Nr", "Bib Num", "Bib Number", "Race No", "Race Nr", "Race Number", "Start No",
               "Start Nr", "Start Number", "Startnummer", "Dossard", "Numéro Dossard", "N° Dossard", "Dorsal",
               "Número Dorsal", "No", "Nr", "N°", "Num", "Number", "Numéro")
NAME_HEADERS = ("Name", "Full Name", "Runner", "Runner Name", "Athlete", "Athlete Name", "Participant",
                "Participant Name", "Competitor")
FIRST_NAME_HEADERS = ("First Name", "Given Name", "Forename", "Vorname", "Prénom")
LAST_NAME_HEADERS = ("Last Name", "Surname", "Family Name", "Nachname", "Nom")
CATEGORY_HEADERS = ("Category", "Cat", "Age Group", "Age Category", "Division", "Class", "Gender Category",
                    "Kategorie", "Catégorie", "Categoría")

MAX_LISTED_IN_REASON = 5  # an ambiguous read names at most this many bibs
# A digit read at least this sure is no confusion: a read not on the list that is sure of the digit a snap would
# change is an unlisted runner (a late entry) or junk, not that listed bib. On the bib crops (bibracer and RBNR
# runners, both engines of bib mode) 8 of the 9 one-digit misreads had that digit below 0.98, and 90 % of the
# digits read right were at or above it (`python benchmarks/sure_digits.py`).
SURE_DIGIT = 0.98


class StartListError(ValueError):
    """A start list that cannot be used, with a message for the photographer (file, row, what was expected)."""


@dataclass(frozen=True)
class Entrant:
    """One line of the start list. `bib` is the digits as printed, leading zeros kept."""

    bib: str
    name: str = ""
    category: str = ""


@dataclass(frozen=True)
class Snap:
    """What the start list makes of one read: the listed bib it stands for (None when rejected) and why."""

    number: str | None
    status: str  # "listed" | "snapped" | "rejected"
    reason: str


def _fold(text: str) -> str:
    """Case- and accent-insensitive form of a text ("Prénom" -> "prenom")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _header_key(header: str) -> str:
    """A column name reduced to what identifies it: "BIB_No.", "Bib #" and "bib no" are all "bibno"."""
    return "".join(c for c in _fold(header) if not c.isspace() and c not in "_-.#")


_BIB_KEYS = {_header_key(h) for h in BIB_HEADERS}
_NAME_KEYS = {_header_key(h) for h in NAME_HEADERS}
_FIRST_NAME_KEYS = {_header_key(h) for h in FIRST_NAME_HEADERS}
_LAST_NAME_KEYS = {_header_key(h) for h in LAST_NAME_HEADERS}
_CATEGORY_KEYS = {_header_key(h) for h in CATEGORY_HEADERS}


def _decode(data: bytes) -> str:
    """The text of a start list: UTF-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode text"), else
    Windows-1252 as Excel writes "CSV" on Western systems, else Latin-1 (which decodes any byte)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1")


def _dialect(text: str) -> type[csv.Dialect]:
    try:
        return csv.Sniffer().sniff(text[:65536], delimiters=",;\t")
    except csv.Error:  # one column, or too irregular to tell: plain commas
        return csv.excel


def _column(headers: list[str], keys: set[str], role: str, path: Path) -> int | None:
    """The index of the one column whose name is in `keys`, None if there is none."""
    found = [i for i, header in enumerate(headers) if _header_key(header) in keys]
    if len(found) > 1:
        names = " and ".join(repr(headers[i]) for i in found)
        raise StartListError(f"start list {path}: columns {names} could each be the {role} column; rename or "
                             "delete all but one of them")
    return found[0] if found else None


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of the file with their row number as a spreadsheet shows it (header = row 1)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StartListError(f"start list {path} not found") from None
    except OSError as error:
        raise StartListError(f"cannot read start list {path}: {error.strerror or error}") from error
    if data.startswith(b"PK\x03\x04"):
        raise StartListError(f"start list {path} is an Excel workbook, not a CSV file: in Excel use "
                             "File > Save As > CSV")
    text = _decode(data)
    if "\x00" in text:  # a binary file, or UTF-16 without its BOM
        raise StartListError(f"start list {path} is not a CSV text file: in Excel use File > Save As > "
                             "CSV UTF-8")
    first_line, _, rest = text.partition("\n")
    hint = first_line.rstrip("\r")
    if len(hint) == 5 and hint.lower().startswith("sep="):
        # Excel's own delimiter line ("sep=;"); Excel hides it, so the header is still row 1.
        reader = csv.reader(io.StringIO(rest, newline=""), csv.excel, delimiter=hint[4])
    else:
        reader = csv.reader(io.StringIO(text, newline=""), _dialect(text))
    number = 0
    try:
        for number, row in enumerate(reader, 1):
            if any(cell.strip() for cell in row):
                yield number, row
    except csv.Error as error:
        raise StartListError(f"start list {path}, row {number + 1}: not readable as CSV ({error})") from error


def read_start_list(path: Path) -> list[Entrant]:
    """The entrants of a start-list CSV file, in file order. Raises `StartListError` for a missing or empty
    file, no (or more than one) bib column, a row without a bib number and a bib listed twice."""
    path = Path(path)
    rows = _rows(path)
    header_row = next(rows, None)
    if header_row is None:
        raise StartListError(f"start list {path} is empty: expected a CSV file with a header row (e.g. Bib,Name) "
                             "and one row per entrant")
    headers = [header.strip() for header in header_row[1]]
    bib_column = _column(headers, _BIB_KEYS, "bib number", path)
    if bib_column is None:
        found = ", ".join(repr(h) for h in headers if h) or "none"
        raise StartListError(f"start list {path} has no bib-number column. Columns found: {found}. The bib column "
                             f"may be called: {', '.join(BIB_HEADERS)}")
    name_column = _column(headers, _NAME_KEYS, "name", path)
    first_column = _column(headers, _FIRST_NAME_KEYS, "first name", path)
    last_column = _column(headers, _LAST_NAME_KEYS, "last name", path)
    category_column = _column(headers, _CATEGORY_KEYS, "category", path)
    if name_column is not None and first_column is not None and last_column is None:
        name_column, last_column = None, name_column  # beside a first name ("Vorname;Name"), the name is the surname

    def cell(row: list[str], column: int | None) -> str:
        return row[column].strip() if column is not None and column < len(row) else ""

    entrants: list[Entrant] = []
    first_seen: dict[str, tuple[int, str]] = {}  # bib -> (row, bib as printed)
    lettered: list[str] = []  # bibs printed with more than digits ("T2182")
    for number, row in rows:
        printed = cell(row, bib_column)
        if (spreadsheet := _SPREADSHEET_NUMBER.fullmatch(printed)) is not None:
            if spreadsheet["fraction"].strip("0") or spreadsheet["exponent"]:
                raise StartListError(f"start list {path}, row {number}: bib {printed!r} is a number a spreadsheet "
                                     "reformatted: format the bib column as text and save the file again")  # fmt: skip
            printed = spreadsheet["whole"]  # 2605.0, as pandas and Excel write a number column, is bib 2605
        bib = bib_digits(printed)
        if not bib:
            what = f"bib {printed!r} has no digits" if printed else f"the {headers[bib_column]!r} cell is empty"
            raise StartListError(f"start list {path}, row {number}: {what}; every entrant needs a bib number")
        if bib in first_seen:
            row_before, printed_before = first_seen[bib]
            if printed_before == printed:
                rows_text = f"rows {row_before} and {number}"
            else:
                rows_text = f"rows {row_before} ({printed_before!r}) and {number} ({printed!r})"
            raise StartListError(f"start list {path}: bib {bib} is listed twice, {rows_text}")
        first_seen[bib] = (number, printed)
        if unicodedata.normalize("NFKC", printed) != bib:
            lettered.append(printed)
        if name_column is not None:
            name = cell(row, name_column)
        else:
            name = " ".join(part for part in (cell(row, first_column), cell(row, last_column)) if part)
        entrants.append(Entrant(bib, name, cell(row, category_column)))
    if not entrants:
        raise StartListError(f"start list {path} has a header row but no entrants")
    if lettered:  # the reader keeps a bib's digits, so the list is matched on its digits too
        log.warning("start list %s: %d bibs have more than digits (e.g. %r): they are matched on their digits (%s)",
                    path, len(lettered), lettered[0], bib_digits(lettered[0]))  # fmt: skip
    return entrants


def _misreads(bib: str) -> Iterator[str]:
    """Every plausible OCR read of `bib`: one digit confused, or its first or last digit missing."""
    for i, digit in enumerate(bib):
        for other in _CONFUSED_WITH[digit]:
            yield bib[:i] + other + bib[i + 1:]
    if len(bib) > 1:
        yield bib[1:]
        yield bib[:-1]


def _confused_at(read: str, bib: str) -> int | None:
    """The position of the digit confused where `read` is one of `bib`'s `_misreads` by a confusion; None where a
    digit is missing."""
    if len(read) < len(bib):
        return None
    return next(i for i, (r, b) in enumerate(zip(read, bib, strict=True)) if r != b)


def _edit(read: str, bib: str) -> str:
    """How `read` differs from `bib`, one of whose `_misreads` it is."""
    if (i := _confused_at(read, bib)) is None:
        return "first digit missing" if bib[1:] == read else "last digit missing"
    return f"{read[i]} read for {bib[i]} at position {i + 1}"


class StartList:
    """The entrants of a race, by bib, with OCR-read snapping and name search."""

    def __init__(self, entrants: Iterable[Entrant]) -> None:
        self.entrants = tuple(entrants)
        self._by_bib: dict[str, Entrant] = {}
        for entrant in self.entrants:
            if not (entrant.bib.isascii() and entrant.bib.isdigit()):
                raise ValueError(f"bib {entrant.bib!r} is not ASCII digits (see bib_digits)")
            if entrant.bib in self._by_bib:
                raise ValueError(f"bib {entrant.bib} is listed twice")
            self._by_bib[entrant.bib] = entrant
        self.bibs = frozenset(self._by_bib)
        self._longest = max(map(len, self.bibs), default=0)
        self._folded_names = [_fold(entrant.name) for entrant in self.entrants]
        # Each misread -> the listed bib it comes from, or a tuple of them when several do; one dict lookup per
        # read then answers `snap`. A single bib is stored as the bare string (the common case) to save memory.
        self._reach: dict[str, str | tuple[str, ...]] = {}
        for bib in self.bibs:
            for read in _misreads(bib):
                if read in self.bibs:  # a listed bib read correctly is never a misread
                    continue
                hit = self._reach.get(read)
                if hit is None:
                    self._reach[read] = bib
                elif isinstance(hit, str):
                    if hit != bib:
                        self._reach[read] = (hit, bib)
                elif bib not in hit:
                    self._reach[read] = (*hit, bib)

        # Per read length, how many reads of that many digits snapping reaches: see `snap_chance`.
        self._reached_by_length = Counter(len(read) for read in self._reach)

    def snap_chance(self, read: str) -> float:
        """The share of all reads as long as `read` that lie one plausible misread from a listed bib: the chance
        that a read which is no listed bib's misread (a fragment, a year, an unlisted runner) is snapped anyway.
        Small for 500 random five-digit bibs (0.06); large for 100 three-digit ones (0.48) or 2000 four-digit ones
        (0.67), where a snap says little."""
        return self._reached_by_length[len(read)] / 10 ** len(read)

    @classmethod
    def from_csv(cls, path: Path) -> Self:
        return cls(read_start_list(path))

    def entrant(self, bib: str) -> Entrant | None:
        return self._by_bib.get(bib)

    def find_name(self, query: str) -> list[Entrant]:
        """The entrants whose name contains every word of `query`, ignoring case and accents ("muller" finds
        "Jörg Müller"), in start-list order; none for a query without words."""
        words = _fold(query).split()
        if not words:
            return []
        return [entrant for entrant, name in zip(self.entrants, self._folded_names, strict=True)
                if all(word in name for word in words)]

    def snap(self, read: str, digit_confidences: Sequence[float] | None = None) -> Snap:
        """The listed bib an OCR read stands for: itself if listed (or listed without its leading zeros, as a
        spreadsheet writes it), else the one listed bib it is one plausible misread of (a confused digit, or a
        first or last digit missing). Several such bibs, none, or a read longer than every bib (an inserted digit is
        never snapped) is rejected. `digit_confidences` (one per digit of the read) rule out the listed bibs that
        would change a digit read surely (`SURE_DIGIT`)."""
        digits = bib_digits(read)
        if not digits:
            return Snap(None, "rejected", f"read {read!r}: no digits")
        if digits in self.bibs:
            return Snap(digits, "listed", f"read {digits}: on the start list")
        # A spreadsheet drops a number's leading zeros: bib "0891" is listed as 891.
        if (stripped := digits.lstrip("0")) != digits and stripped in self.bibs:
            return Snap(stripped, "listed", f"read {digits}: on the start list as {stripped} (leading zeros)")
        hit = self._reach.get(digits)
        reached = (hit,) if isinstance(hit, str) else hit or ()
        sure = digit_confidences if digit_confidences is not None and len(digit_confidences) == len(digits) else None
        plausible = [bib for bib in reached if sure is None or (i := _confused_at(digits, bib)) is None
                     or sure[i] < SURE_DIGIT]  # fmt: skip
        if len(plausible) == 1:
            return Snap(plausible[0], "snapped", f"read {digits}: {_edit(digits, plausible[0])} ({plausible[0]})")
        if plausible:
            listed = sorted(plausible, key=lambda bib: (len(bib), bib))
            named = ", ".join(f"{bib} ({_edit(digits, bib)})" for bib in listed[:MAX_LISTED_IN_REASON])
            more = f" and {len(listed) - MAX_LISTED_IN_REASON} more" if len(listed) > MAX_LISTED_IN_REASON else ""
            return Snap(None, "rejected", f"read {digits}: {len(listed)} listed bibs one edit away: {named}{more}")
        if reached:  # each would change a digit read surely
            sure_of = ", ".join(f"its {digits[i]} at position {i + 1} was read {sure[i]:.2f} sure, not {bib[i]} ({bib})"
                                for bib in sorted(reached)[:MAX_LISTED_IN_REASON]
                                if (i := _confused_at(digits, bib)) is not None)  # fmt: skip
            return Snap(None, "rejected", f"read {digits}: not on the start list, and no confusion: {sure_of}")
        if self.bibs and len(digits) > self._longest:
            return Snap(None, "rejected", f"read {digits}: longer than every bib on the start list")
        return Snap(None, "rejected", f"read {digits}: not on the start list")
