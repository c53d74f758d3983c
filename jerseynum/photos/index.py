"""The race-photo index: an SQLite file of every photo of a folder, the bib numbers read in it, and search.

Each photo's result is written in one transaction, so an interrupted run (Ctrl-C, kill, power loss) leaves
every photo either fully tagged or not at all, and a rerun picks up where it stopped. A photo is identified by
its path under the folder; its size and modification time tell a rerun whether it may have changed (then its
content hash decides), and the model version whether it was tagged by another model.

Two kinds of rows are kept apart: what the reader saw of each runner (`runners`: pass 1, written once per photo
read) and the numbers decided from them (`numbers`: pass 2, `photos/event.py`, rewritten whenever the whole
event is re-decided: after a run, or when a start list is given). A decision never overwrites a read, so the
event can be re-decided in seconds without reading a photo again, and every number shown says why.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import os
import sqlite3
import time
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

import numpy as np

from jerseynum.types import Box

if TYPE_CHECKING:
    from jerseynum.photos.startlist import StartList

APPLICATION_ID = 0x4A4E554D  # "JNUM" in the SQLite header: this file is a jerseynum index
TABLES = {"meta", "photos", "numbers"}
# Pass 1 rows of an index made before runners were stored cannot be re-decided: its photos are read again.
SCHEMA_VERSION = "2"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- relative to the folder in meta('photos_root'), '/'-separated
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    width INTEGER,                      -- NULL where the file could not be decoded
    height INTEGER,
    error TEXT,                         -- why the photo could not be tagged (an unreadable file), else NULL
    model_version TEXT NOT NULL,
    seconds REAL NOT NULL,              -- time spent tagging it
    taken REAL                          -- when it was shot (EXIF, seconds), NULL where unknown
);
CREATE TABLE IF NOT EXISTS runners (   -- pass 1: one row per runner found, as the reader saw them
    id INTEGER PRIMARY KEY,
    photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    rx1 INTEGER NOT NULL, ry1 INTEGER NOT NULL, rx2 INTEGER NOT NULL, ry2 INTEGER NOT NULL,  -- region searched
    number TEXT NOT NULL,               -- the vote's number, '' when none was read
    confidence REAL NOT NULL,           -- the vote's own confidence (uncalibrated)
    x1 INTEGER, y1 INTEGER, x2 INTEGER, y2 INTEGER,  -- the number's box, NULL where none
    evidence TEXT NOT NULL,             -- JSON: the face box and the readings behind the number
    face_embedding BLOB,                -- float32 appearance signature (photos/identity.py), NULL where none
    colour BLOB
);
CREATE TABLE IF NOT EXISTS numbers (   -- pass 2: the numbers decided, shown and hidden alike
    photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    number TEXT NOT NULL,               -- digits as printed, leading zeros kept
    confidence REAL NOT NULL,
    x1 INTEGER NOT NULL, y1 INTEGER NOT NULL, x2 INTEGER NOT NULL, y2 INTEGER NOT NULL,  -- the bib, photo pixels
    status TEXT NOT NULL DEFAULT 'read',  -- see SHOWN and HIDDEN
    read TEXT NOT NULL DEFAULT '',      -- the number as read, where the decision changed it
    reason TEXT NOT NULL DEFAULT '',
    runner_id INTEGER,                  -- the runner it was read on or given to
    source_photo_id INTEGER             -- a propagated number: the photo it was read in
);
CREATE TABLE IF NOT EXISTS entrants (  -- the organiser's start list, if given
    bib TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS corrections (  -- a person's word on a photo's numbers, never overwritten by a machine
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,                 -- the photo by its path, so that a photo read again keeps its corrections
    number TEXT NOT NULL,
    action TEXT NOT NULL,               -- 'confirm' | 'add' | 'remove'
    created REAL NOT NULL,              -- seconds since the epoch
    sha256 TEXT,                        -- the photo it was said of, by content and by the moment it was shot: another
    taken REAL                          -- photo under that name later is not corrected by it, the same photo with
                                        -- its metadata edited (a rating, a caption) is; NULL sha256: said before
);                                      -- these were recorded (any photo at that path)
CREATE TABLE IF NOT EXISTS clusters (  -- pass 2: which runners are one person (photos/identity.py)
    runner_id INTEGER PRIMARY KEY REFERENCES runners(id) ON DELETE CASCADE,
    cluster INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS keywords_written (  -- keywords write-metadata added: the only ones it takes back
    path TEXT NOT NULL,                 -- the photo by its path, as corrections
    place TEXT NOT NULL,                -- where they went: 'photo' | 'sidecar' (photos/metadata.py)
    keyword TEXT NOT NULL,
    PRIMARY KEY (path, place, keyword)
);
CREATE INDEX IF NOT EXISTS numbers_by_number ON numbers(number);
CREATE INDEX IF NOT EXISTS numbers_by_photo ON numbers(photo_id);
CREATE INDEX IF NOT EXISTS runners_by_photo ON runners(photo_id);
CREATE INDEX IF NOT EXISTS clusters_by_cluster ON clusters(cluster);
"""
# Decisions that search, export and the page show, and those kept only so that nothing is lost.
SHOWN = ("read", "snapped", "propagated", "completed", "confirmed", "corrected")
HIDDEN = ("unsure", "fragment", "duplicate", "rejected", "demoted", "removed")
# The hidden reads a person may want to show: a runner the start list lacks (a late entry), a read less likely
# right than wrong, one whose digit count the race's bibs seldom have. Fragments (a piece of a number shown in the
# same photo) and a person's own removals are not asked about again.
REVIEWED_HIDDEN = ("rejected", "unsure", "demoted")
CORRECTIONS = ("confirm", "add", "remove")
SHOWN_SQL = ", ".join(f"'{status}'" for status in SHOWN)


class IndexFileError(RuntimeError):
    """An index file that is not ours, or belongs to another photo folder."""


# Files SQLite keeps beside an index, and the lock of its `tag` runs (`tag_run_lock`): never photos.
COMPANION_SUFFIXES = ("-wal", "-shm", "-journal", "-lock")


@contextmanager
def tag_run_lock(index_path: Path) -> Iterator[None]:
    """Hold the index's run lock for a `tag` run: a second run on the same index is refused at once (each would
    read every photo). The kernel drops the lock when its process ends, however it ends; the empty lock file
    (INDEX-lock) stays, as removing it would let two runs hold locks on two files."""
    index_path = Path(index_path).resolve()  # one lock whatever link or relative path names the index
    lock_path = index_path.with_name(index_path.name + "-lock")
    try:  # read-only is enough for flock: a lock file another user made is no obstacle
        lock = os.open(lock_path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError as error:
        raise IndexFileError(f"cannot open {lock_path}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexFileError(f"another `jerseynum tag` is running on {index_path}: wait for it to end, or stop"
                                 f" it (what it saved is kept) and run this again") from None  # fmt: skip
        yield
    finally:
        os.close(lock)


class StaleReadsError(RuntimeError):
    """The event's decisions were made from photos, corrections or a start list that another run has changed
    since: not saved."""


class IndexFullError(IndexFileError):
    """The disk (or SQLite's size limit) is full: what was committed before stays in the index."""


def bib_digits(text: str) -> str:
    """The ASCII digits of a typed bib number: full-width, Arabic-Indic and other Unicode decimal digits ("３６３８",
    "٣٦٣٨") become ASCII, so they match what the reader stored; everything else is dropped."""
    return "".join(str(unicodedata.decimal(c)) for c in unicodedata.normalize("NFKC", text) if c.isdecimal())


@dataclass(frozen=True)
class BibNumber:
    """One number decided for a photo (pass 2), with how it was decided."""

    number: str
    confidence: float  # the probability that the number is right (photos/event.py calibrates it)
    box: Box
    status: str = "read"  # one of SHOWN (search and export list it) or HIDDEN (kept, not shown)
    read: str = ""  # the number as read, where the decision changed it ("1026" completed to "10264")
    reason: str = ""
    runner: int | None = None  # the runner (`RunnerRead` position in its photo, or row id once stored)
    source: str | None = None  # a propagated number: the photo it was read in

    @property
    def how(self) -> str:
        """How a shown number was decided, in words, where it is not simply as read ("" then)."""
        if self.status == "propagated":
            return f"the same runner, read in {self.source}"
        if self.status == "completed":
            return f"read {self.read}: {self.reason}"
        if self.status in ("snapped", "confirmed", "corrected"):
            return self.reason  # a snap's reason names the read ("read 8638: 8 read for 3 at position 1 (3638)")
        return ""


@dataclass(frozen=True, eq=False)  # eq=False: the signature arrays have no single truth value
class RunnerRead:
    """Pass 1: what the reader saw of one runner of a photo. Machine reads, stored once per photo read."""

    region: Box  # where the bib was searched, photo pixels
    number: str = ""  # the vote's number; "" where none was read
    confidence: float = 0.0  # the vote's own confidence, uncalibrated
    box: Box | None = None  # the number's box, photo pixels
    evidence: dict = field(default_factory=dict)  # the face box and the readings behind the number (JSON-able)
    face_embedding: np.ndarray | None = None  # photos/identity.py signature parts; None where not computed
    colour: np.ndarray | None = None

    def digit_confidences(self) -> tuple[float, ...] | None:
        """Per digit of `number`, the surest that any reading spelling the number read it; None where no reading
        spells it (or none was kept)."""
        spelled = [r["chars"] for r in self.evidence.get("readings", ())
                   if r.get("text") == self.number and len(r.get("chars", ())) == len(self.number)]  # fmt: skip
        return tuple(max(digit) for digit in zip(*spelled, strict=True)) if spelled and self.number else None


@dataclass(frozen=True)
class StoredRunner:
    """A runner as the index holds it: its row id, its photo, and what pass 1 read."""

    id: int
    path: str
    taken: float | None  # when its photo was shot (EXIF seconds), None where unknown
    read: RunnerRead


def _blob(array: np.ndarray | None) -> bytes | None:
    return None if array is None else np.asarray(array, np.float32).tobytes()


def _array(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, np.float32).copy()


@dataclass(frozen=True)
class PhotoRecord:
    """What the index holds of one photo (`numbers` best first)."""

    id: int
    path: str
    sha256: str
    width: int | None
    height: int | None
    error: str | None
    model_version: str
    numbers: tuple[BibNumber, ...] = ()


@dataclass(frozen=True)
class Review:
    """What a person should look at in an index (`PhotoIndex.review`)."""

    uncertain: list[tuple[PhotoRecord, BibNumber]]  # shown numbers least likely right, least likely first
    hidden: list[tuple[PhotoRecord, BibNumber]]  # reads hidden as REVIEWED_HIDDEN, likeliest first
    unread: list[tuple[PhotoRecord, int]]  # photos with runners found but no number, and how many


def reviewed_hidden(numbers: Iterable[BibNumber]) -> list[BibNumber]:
    """Of one photo's decided numbers, the hidden reads that `review` asks a person about (`REVIEWED_HIDDEN`): not
    one the photo shows anyway (another runner's read of it)."""
    numbers = list(numbers)
    shown = {n.number for n in numbers if n.status in SHOWN}
    return [n for n in numbers if n.status in REVIEWED_HIDDEN and n.number not in shown]


@dataclass(frozen=True)
class Match:
    """A photo found by a search, with the reading that matched and how (exact, partial or fuzzy)."""

    photo: PhotoRecord
    number: BibNumber
    kind: str  # "exact" | "partial" | "fuzzy"
    distance: int  # edit distance between the query and the number (0 for exact)

    @property
    def rank(self) -> tuple:
        """Sort key, best first: exact, then partial (closest length first), then fuzzy by distance; then the
        more confident reading, then the path (so ties are stable)."""
        kind_order = {"exact": 0, "partial": 1, "fuzzy": 2}[self.kind]
        return kind_order, self.distance, -self.number.confidence, self.photo.path


def exact_and_near(found: list[Match]) -> tuple[list[Match], list[Match]]:
    """A search's matches split into the bib's own photos (exact) and those of near numbers (another bib
    containing it, or a digit off): strangers' more often than not, so every view lists them apart."""
    return [m for m in found if m.kind == "exact"], [m for m in found if m.kind != "exact"]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


class PhotoIndex:
    """An open index file. Use as a context manager, or call `close()`."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        """Open (and create, unless `read_only`) the index at `path`. Read-only opens never write a byte, so
        search, export and the page work on an index on a read-only mount or of another user; a file that is
        not a jerseynum index is refused, never altered."""
        self.path = Path(path)
        try:
            if read_only:
                self._db = self._connect_read_only()
                self._check_ours(must_exist=True)
                self._check_current()
            else:
                if self.path.is_dir():
                    raise IndexFileError(f"{self.path} is a folder: give the index's file, e.g. {self.path / 'race.db'}")
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as error:  # its folder's place taken by a file, or not ours to write
                    raise IndexFileError(f"cannot make the index's folder {self.path.parent}: "
                                         f"{error.strerror or error}") from None  # fmt: skip
                self._db = sqlite3.connect(self.path, timeout=30)
                self._check_ours(must_exist=False)
                # WAL: readers (the web page) never block the tagger; a killed writer leaves the file consistent.
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                # One transaction: a process opening the index meanwhile sees every table, upgraded, or none (never
                # a half-made index that it would take for someone else's file or an older jerseynum's).
                with self._db:  # commits, or rolls back on an error
                    self._db.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA application_id = {APPLICATION_ID};")
                    self._upgrade()
        except sqlite3.DatabaseError as error:
            if hasattr(self, "_db"):
                self._db.close()  # a refused file is not held open
            self._raise_for(error, "open")

    def _connect_read_only(self) -> sqlite3.Connection:
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            # A WAL index on a read-only mount, closed cleanly: its -shm file is gone and cannot be made there.
            # Nothing can be writing to a read-only mount, so the file may be read as immutable.
            db.close()
            return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=30)

    def _check_current(self) -> None:
        """A read-only open cannot upgrade an index of an older jerseynum: say how to, rather than fail on a column."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            self._db.close()
            raise IndexFileError(f"{self.path} was made by an older jerseynum: run `jerseynum tag PHOTOS --index "
                                 f"{self.path}` once to bring it up to date (its photos are read again)")  # fmt: skip

    def _upgrade(self) -> None:
        """Bring an index of an older jerseynum up to SCHEMA_VERSION: its tables gain the new columns, and its
        photos, tagged before runners were stored, are marked to be read again by the next `tag` run."""
        columns = {  # columns added since, checked at every writable open (cheap): no version of their own
            "photos": ["taken REAL"],
            "numbers": ["status TEXT NOT NULL DEFAULT 'read'", "read TEXT NOT NULL DEFAULT ''",
                        "reason TEXT NOT NULL DEFAULT ''", "runner_id INTEGER", "source_photo_id INTEGER"],
            "corrections": ["sha256 TEXT", "taken REAL"],
        }  # fmt: skip
        for table, wanted in columns.items():
            have = {info[1] for info in self._db.execute(f"PRAGMA table_info({table})")}
            for column in wanted:
                if column.split()[0] not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row and row[0] == SCHEMA_VERSION:
            return
        self._db.execute("UPDATE photos SET model_version = '' WHERE id NOT IN (SELECT photo_id FROM runners)")
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))

    def _check_ours(self, must_exist: bool) -> None:
        """Refuse a database of someone else's (other tables, or another application's id) before touching it."""
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (application_id,) = self._db.execute("PRAGMA application_id").fetchone()
        foreign = application_id not in (0, APPLICATION_ID) or (tables and not TABLES <= tables)
        if foreign or (must_exist and not TABLES <= tables):
            self._db.close()
            raise IndexFileError(f"{self.path} is not a jerseynum index (it holds other data); it was left as it"
                                 " is: choose another --index file")  # fmt: skip

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[None]:
        """One transaction; a full disk or a broken file becomes the project's own error, saying what failed."""
        try:
            with self._db:
                yield
        except sqlite3.OperationalError as error:
            self._raise_for(error, doing)

    def _raise_for(self, error: sqlite3.DatabaseError, doing: str) -> None:
        if (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL or "disk is full" in str(error):
            raise IndexFullError(f"{self.path}: the disk is full ({doing} failed)") from error
        raise IndexFileError(f"{self.path} is not a jerseynum index: {error}") from error

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # --- the folder this index describes ---------------------------------------------------------------

    @property
    def photos_root(self) -> Path | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'photos_root'").fetchone()
        return Path(row[0]) if row else None

    def bind_root(self, root: Path, relocate: bool = False) -> None:
        """Record the photo folder; an index of another folder is refused rather than mixed, unless `relocate`
        says its photos moved to `root`."""
        root = Path(root).resolve()
        known = self.photos_root
        if known is None or (relocate and known != root):
            with self._transaction("recording the photo folder"):
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('photos_root', ?)", (str(root),))
        elif known != root:
            raise IndexFileError(f"{self.path} indexes {known}, not {root}: if its photos moved there, add"
                                 f" --relocate; else use another --index file")  # fmt: skip

    # --- writing -------------------------------------------------------------------------------------

    def known(self) -> dict[str, tuple[int, int, str, str]]:
        """path -> (size, mtime_ns, sha256, model_version) of every photo in the index."""
        rows = self._db.execute("SELECT path, size, mtime_ns, sha256, model_version FROM photos")
        return {path: (size, mtime, sha, version) for path, size, mtime, sha, version in rows}

    def unreadable(self) -> set[str]:
        """Paths of the photos recorded as unreadable (or whose reading failed), with the reason in `error`."""
        return {path for (path,) in self._db.execute("SELECT path FROM photos WHERE error IS NOT NULL")}

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """A file whose timestamp changed but whose content did not: remember the new stat, keep the tags."""
        with self._transaction(f"updating {path}"):
            self._db.execute("UPDATE photos SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path))

    def move(self, old: str, new: str, size: int, mtime_ns: int) -> None:
        """A photo moved or renamed in the folder (the same content at another path): its reads and a person's
        corrections go with it."""
        with self._transaction(f"moving {old} to {new}"):
            self._db.execute("UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE path = ?",
                             (new, size, mtime_ns, old))  # fmt: skip
            self._db.execute("UPDATE corrections SET path = ? WHERE path = ?", (new, old))
            self._db.execute("UPDATE keywords_written SET path = ? WHERE path = ?", (new, old))
            self._event_changed()  # decisions are saved by path

    def record_file(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        """A photo file that jerseynum itself changed (keywords written into it): its new stat and hash, so that a
        rerun of `tag` does not read it again."""
        with self._transaction(f"updating {path}"):
            # the corrections said of it stay with it: the same photo, its keywords aside
            self._db.execute("UPDATE corrections SET sha256 = ? WHERE path = ? AND sha256 ="
                             " (SELECT sha256 FROM photos WHERE path = ?)", (sha256, path, path))  # fmt: skip
            self._db.execute("UPDATE photos SET size = ?, mtime_ns = ?, sha256 = ? WHERE path = ?",
                             (size, mtime_ns, sha256, path))  # fmt: skip

    def record_keywords(self, path: str, place: str, added: Iterable[str], removed: Iterable[str]) -> None:
        """Keywords write-metadata put into the photo's file or sidecar (`place`), and those it took out."""
        with self._transaction(f"recording the keywords of {path}"):
            self._db.executemany("INSERT OR IGNORE INTO keywords_written VALUES (?, ?, ?)",
                                 [(path, place, keyword) for keyword in added])  # fmt: skip
            self._db.executemany("DELETE FROM keywords_written WHERE path = ? AND place = ? AND keyword = ?",
                                 [(path, place, keyword) for keyword in removed])  # fmt: skip

    def keywords_written(self) -> dict[str, dict[str, set[str]]]:
        """Per photo path and place, the keywords write-metadata added and has not taken back."""
        written: dict[str, dict[str, set[str]]] = {}
        for path, place, keyword in self._db.execute("SELECT path, place, keyword FROM keywords_written"):
            written.setdefault(path, {}).setdefault(place, set()).add(keyword)
        return written

    def put(self, path: str, sha256: str, size: int, mtime_ns: int, shape: tuple[int, int] | None,
            numbers: list[BibNumber], error: str | None, model_version: str, seconds: float,
            runners: list[RunnerRead] = (), taken: float | None = None) -> None:  # fmt: skip
        """Replace the photo's row, its runners (pass 1) and its numbers in one transaction. `numbers` are the
        photo's own decisions (`event.decide_photo`), their `runner` a position in `runners`; the whole
        event's decisions replace them when it is re-decided (`replace_decisions`)."""
        width, height = (shape[1], shape[0]) if shape else (None, None)
        with self._transaction(f"saving {path}"):
            values = (sha256, size, mtime_ns, width, height, error, model_version, seconds, taken)
            row = self._db.execute("SELECT id FROM photos WHERE path = ?", (path,)).fetchone()
            if row is not None:  # read again: it keeps its id, which the page's links and shared URLs name
                photo_id = row[0]
                self._db.execute("DELETE FROM runners WHERE photo_id = ?", (photo_id,))
                self._db.execute("DELETE FROM numbers WHERE photo_id = ?", (photo_id,))
                self._db.execute("UPDATE photos SET sha256 = ?, size = ?, mtime_ns = ?, width = ?, height = ?,"
                                 " error = ?, model_version = ?, seconds = ?, taken = ? WHERE id = ?",
                                 (*values, photo_id))  # fmt: skip
            else:
                photo_id = self._new_photo_id()
                self._db.execute("INSERT INTO photos (id, path, sha256, size, mtime_ns, width, height, error,"
                                 " model_version, seconds, taken) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 (photo_id, path, *values))  # fmt: skip
            self._event_changed()
            runner_ids = [self._insert_runner(photo_id, runner) for runner in runners]
            self._insert_numbers(photo_id, numbers, lambda k: runner_ids[k] if k is not None else None)

    def _new_photo_id(self) -> int:
        """An id no photo of this index ever had: a link to a photo gone from the folder never shows another."""
        photo_id = self._reserve_ids()
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('next_photo_id', ?)", (str(photo_id + 1),))
        return photo_id

    def _reserve_ids(self) -> int:
        """The next photo id, recorded before any photo is removed (an index from before ids were kept had no
        record), so that the highest id stays taken once its photo is gone."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'next_photo_id'").fetchone()
        (highest,) = self._db.execute("SELECT MAX(id) FROM photos").fetchone()
        photo_id = max(int(row[0]) if row else 1, (highest or 0) + 1)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('next_photo_id', ?)", (str(photo_id),))
        return photo_id

    def _event_changed(self) -> None:
        """Count a change of what the event is decided from (a photo saved, moved or removed, a correction, the
        start list), within its transaction."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('event_generation', ?)", (str(self.event_generation() + 1),))

    def event_generation(self) -> int:
        """How many times what the event is decided from changed: decisions made from one generation may be saved
        only while it is still current (`replace_decisions`)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'event_generation'").fetchone()
        return int(row[0]) if row else 0

    def _insert_runner(self, photo_id: int, runner: RunnerRead) -> int:
        box = runner.box or (None, None, None, None)
        cursor = self._db.execute(
            "INSERT INTO runners (photo_id, rx1, ry1, rx2, ry2, number, confidence, x1, y1, x2, y2, evidence,"
            " face_embedding, colour) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (photo_id, *runner.region, runner.number, runner.confidence, *box, json.dumps(runner.evidence),
             _blob(runner.face_embedding), _blob(runner.colour)),
        )  # fmt: skip
        return cursor.lastrowid

    def _insert_numbers(self, photo_id: int, numbers: list[BibNumber], runner_id, source_id=lambda path: None) -> None:
        self._db.executemany(
            "INSERT INTO numbers (photo_id, number, confidence, x1, y1, x2, y2, status, read, reason, runner_id,"
            " source_photo_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(photo_id, n.number, n.confidence, *n.box, n.status, n.read, n.reason, runner_id(n.runner),
              source_id(n.source)) for n in numbers],
        )  # fmt: skip

    def runner_reads(self) -> list[StoredRunner]:
        """Every runner of every photo as pass 1 stored it, by photo path and position in the photo."""
        rows = self._db.execute(
            "SELECT r.id, p.path, p.taken, r.rx1, r.ry1, r.rx2, r.ry2, r.number, r.confidence, r.x1, r.y1, r.x2,"
            " r.y2, r.evidence, r.face_embedding, r.colour FROM runners r JOIN photos p ON p.id = r.photo_id"
            " ORDER BY p.path, r.id"
        )  # fmt: skip
        found = []
        for runner_id, path, taken, *region, number, confidence, x1, y1, x2, y2, evidence, face, colour in rows:
            box = None if x1 is None else (x1, y1, x2, y2)
            read = RunnerRead(
                tuple(region), number, confidence, box, json.loads(evidence), _array(face), _array(colour)
            )
            found.append(StoredRunner(runner_id, path, taken, read))
        return found

    def runners_by_path(self) -> dict[str, list[StoredRunner]]:
        """Every photo's runners, as pass 1 stored them."""
        found: dict[str, list[StoredRunner]] = {}
        for runner in self.runner_reads():
            found.setdefault(runner.path, []).append(runner)
        return found

    def replace_decisions(self, numbers: dict[str, list[BibNumber]], clusters: dict[int, int],
                          generation: int | None = None) -> None:  # fmt: skip
        """The whole event's decisions (pass 2), in one transaction: per photo path its numbers (`runner`: the
        runner's row id, `source`: a photo path), and each runner's identity cluster. With `generation` (the
        `event_generation` they were decided from), raises `StaleReadsError` and saves nothing where another
        run has saved or removed a photo since."""
        with self._transaction("saving the event's decisions"):
            self._db.execute("DELETE FROM numbers")  # the write lock first: no photo is saved between check and write
            if generation is not None and self.event_generation() != generation:
                raise StaleReadsError(f"{self.path}: another run changed its photos or corrections while the event was"
                                      f" being decided")  # fmt: skip
            self._db.execute("DELETE FROM clusters")
            ids = dict(self._db.execute("SELECT path, id FROM photos"))
            for path, decided in numbers.items():
                if path in ids:
                    self._insert_numbers(ids[path], decided, lambda runner: runner, ids.get)
            self._db.executemany("INSERT INTO clusters VALUES (?, ?)", clusters.items())

    def remove(self, paths: list[str]) -> None:
        with self._transaction("removing photos gone from the folder"):
            self._reserve_ids()
            self._db.executemany("DELETE FROM photos WHERE path = ?", [(p,) for p in paths])
            self._event_changed()
            self._db.executemany("DELETE FROM keywords_written WHERE path = ?", [(p,) for p in paths])

    # --- reading -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]

    def _records(self, where: str = "", params: tuple = ()) -> Iterator[PhotoRecord]:
        photos = self._db.execute(
            "SELECT id, path, sha256, width, height, error, model_version FROM photos " + where + " ORDER BY path",
            params,
        ).fetchall()
        numbers = self._numbers([row[0] for row in photos], SHOWN)
        for row in photos:
            yield PhotoRecord(*row, numbers=tuple(numbers.get(row[0], ())))

    def _numbers(self, photo_ids: list[int], statuses: tuple[str, ...]) -> dict[int, list[BibNumber]]:
        """The numbers of these photos decided as one of `statuses`, per photo id, best first."""
        numbers: dict[int, list[BibNumber]] = {}
        for start in range(0, len(photo_ids), 500):  # SQLite caps the parameters of one statement
            chunk = photo_ids[start : start + 500]
            rows = self._db.execute(
                f"SELECT n.photo_id, n.number, n.confidence, n.x1, n.y1, n.x2, n.y2, n.status, n.read, n.reason,"
                f" n.runner_id, p.path FROM numbers n LEFT JOIN photos p ON p.id = n.source_photo_id"
                f" WHERE n.photo_id IN ({','.join('?' * len(chunk))}) AND n.status IN ({','.join('?' * len(statuses))})"
                f" ORDER BY n.confidence DESC",
                (*chunk, *statuses),
            )
            for photo_id, number, confidence, x1, y1, x2, y2, *how in rows:
                numbers.setdefault(photo_id, []).append(BibNumber(number, confidence, (x1, y1, x2, y2), *how))
        return numbers

    def photos(self) -> list[PhotoRecord]:
        return list(self._records())

    def photo(self, photo_id: int) -> PhotoRecord | None:
        return next(self._records("WHERE id = ?", (photo_id,)), None)

    def photo_at(self, path: str) -> PhotoRecord | None:
        return next(self._records("WHERE path = ?", (path,)), None)

    def counts(self) -> tuple[int, int]:
        """(photos in the index, photos with at least one number)."""
        photos = self._db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        numbered = self._db.execute(
            f"SELECT COUNT(DISTINCT photo_id) FROM numbers WHERE status IN ({SHOWN_SQL})"
        ).fetchone()[0]
        return photos, numbered

    def search(self, query: str, partial: bool = True, max_distance: int = 1) -> list[Match]:
        """Photos showing `query` (digits), best first, one match per photo: exact readings, then readings that
        contain the query (`partial`), then readings within `max_distance` edits of it (fuzzy; 0: none)."""
        query = bib_digits(query)
        if not query:
            return []
        # Compare the query with each distinct number once (a race has thousands of bibs, not millions), then
        # load only the photos of the numbers that match.
        kinds: dict[str, tuple[str, int]] = {}
        for (number,) in self._db.execute(f"SELECT DISTINCT number FROM numbers WHERE status IN ({SHOWN_SQL})"):
            distance = edit_distance(query, number)
            if distance == 0:
                kinds[number] = ("exact", 0)
            elif partial and query in number:
                kinds[number] = ("partial", distance)
            elif distance <= max_distance:
                kinds[number] = ("fuzzy", distance)
        if not kinds:
            return []
        wanted = list(kinds)
        photo_ids: set[int] = set()
        for start in range(0, len(wanted), 500):  # SQLite caps the parameters of one statement
            chunk = wanted[start : start + 500]
            rows = self._db.execute(
                f"SELECT DISTINCT photo_id FROM numbers WHERE number IN ({','.join('?' * len(chunk))})"
                f" AND status IN ({SHOWN_SQL})",
                chunk,
            )
            photo_ids.update(row[0] for row in rows)
        best: dict[int, Match] = {}
        for photo in self._records_by_id(sorted(photo_ids)):
            for number in photo.numbers:
                if number.number in kinds:
                    match = Match(photo, number, *kinds[number.number])
                    if photo.id not in best or match.rank < best[photo.id].rank:
                        best[photo.id] = match
        return sorted(best.values(), key=lambda m: m.rank)

    def review(self, below: float) -> Review:
        """What a person should look at (`Review`): the shown numbers less likely right than `below`, least likely
        first (a person's own word excepted); the reads the machine hid that a person may show (`REVIEWED_HIDDEN`),
        likeliest first; and the photos with runners found but neither, with how many."""
        records = self.photos()
        uncertain = sorted(((r, n) for r in records for n in r.numbers
                            if n.confidence < below and n.status not in ("confirmed", "corrected")),
                           key=lambda item: (item[1].confidence, item[0].path))  # fmt: skip
        hidden = self._hidden_reads({record.id: record for record in records})
        given = {n.runner for r in records for n in r.numbers} | {n.runner for _, n in hidden}
        runners = self.runners_by_path()
        unread = []
        for record in records:
            # a number a person added belongs to no runner: it accounts for one of the photo's unread runners
            count = sum(x.id not in given for x in runners.get(record.path, []))
            count -= sum(n.status == "corrected" for n in record.numbers)
            if count > 0:
                unread.append((record, count))
        return Review(uncertain, hidden, unread)

    def _hidden_reads(self, records: dict[int, PhotoRecord]) -> list[tuple[PhotoRecord, BibNumber]]:
        """The hidden reads `review` lists (`reviewed_hidden`), likeliest first, with their photos (`records`: every
        photo of the index, by id, with its shown numbers)."""
        ids = [photo_id for (photo_id,) in self._db.execute(
            f"SELECT DISTINCT photo_id FROM numbers WHERE status IN ({','.join('?' * len(REVIEWED_HIDDEN))})"
            " ORDER BY photo_id", REVIEWED_HIDDEN)]  # fmt: skip
        hidden = self._numbers(ids, REVIEWED_HIDDEN)
        found = [(records[photo_id], number) for photo_id in ids
                 for number in reviewed_hidden([*hidden[photo_id], *records[photo_id].numbers])]  # fmt: skip
        return sorted(found, key=lambda item: (-item[1].confidence, item[0].path, item[1].number))

    def same_runner(self, path: str) -> list[tuple[int, list[PhotoRecord]]]:
        """Per runner found in the photo at `path` (its row id), every other photo of the same person, as the
        event's identity clusters say (photos/identity.py)."""
        found = []
        rows = self._db.execute(
            "SELECT r.id, c.cluster FROM runners r JOIN photos p ON p.id = r.photo_id"
            " LEFT JOIN clusters c ON c.runner_id = r.id WHERE p.path = ? ORDER BY r.id", (path,)
        ).fetchall()  # fmt: skip
        for runner_id, cluster in rows:
            others = [] if cluster is None else [photo_id for (photo_id,) in self._db.execute(
                "SELECT DISTINCT r.photo_id FROM clusters c JOIN runners r ON r.id = c.runner_id"
                " JOIN photos p ON p.id = r.photo_id WHERE c.cluster = ? AND p.path != ?", (cluster, path))]  # fmt: skip
            found.append((runner_id, list(self._records_by_id(sorted(others)))))
        return found

    # --- a person's corrections ------------------------------------------------------------------------

    def correct(self, path: str, number: str, action: str) -> None:
        """Record a person's word on one number of a photo (it replaces their earlier word on that number); the
        event must then be re-decided (`event.redecide`), where corrections win over every machine decision."""
        if action not in CORRECTIONS:
            raise ValueError(f"unknown correction {action!r}: {', '.join(CORRECTIONS)}")
        photo = self._db.execute("SELECT sha256, taken FROM photos WHERE path = ?", (path,)).fetchone()
        if photo is None:
            raise KeyError(f"{path} is not a photo of this index")
        with self._transaction(f"saving a correction of {path}"):
            self._db.execute("DELETE FROM corrections WHERE path = ? AND number = ?", (path, number))
            self._db.execute("INSERT INTO corrections (path, number, action, created, sha256, taken)"
                             " VALUES (?, ?, ?, ?, ?, ?)", (path, number, action, time.time(), *photo))  # fmt: skip
            self._event_changed()

    def corrections(self) -> dict[str, list[tuple[str, str]]]:
        """Per photo path, the corrections said of the photo now there, as (number, action), oldest first."""
        found: dict[str, list[tuple[str, str]]] = {}
        for path, number, action, _ in self._current_corrections():
            found.setdefault(path, []).append((number, action))
        return found

    def _current_corrections(self) -> list[tuple[str, str, str, float]]:
        """(path, number, action, created) of the corrections said of the photo now at their path, by path; an
        index opened read-only before it recorded their photo's content has all of them."""
        columns = {info[1] for info in self._db.execute("PRAGMA table_info(corrections)")}
        same_photo = (" WHERE c.sha256 IS NULL OR c.sha256 = p.sha256 OR c.taken = p.taken"
                      if {"sha256", "taken"} <= columns else "")  # fmt: skip
        return self._db.execute("SELECT c.path, c.number, c.action, c.created FROM corrections c"
                                " LEFT JOIN photos p ON p.path = c.path" + same_photo + " ORDER BY c.path, c.id"
                                ).fetchall()  # fmt: skip

    # --- the start list ------------------------------------------------------------------------------

    def set_entrants(self, entrants: list) -> None:
        """Replace the start list (`startlist.Entrant`s); the event must then be re-decided."""
        with self._transaction("saving the start list"):
            self._db.execute("DELETE FROM entrants")
            self._event_changed()
            self._db.executemany("INSERT INTO entrants VALUES (?, ?, ?)",
                                 [(e.bib, e.name, e.category) for e in entrants])  # fmt: skip

    def start_list(self) -> StartList | None:
        """The stored start list (`startlist.StartList`), None where none was given."""
        from jerseynum.photos.startlist import Entrant, StartList  # startlist imports this module

        rows = self._db.execute("SELECT bib, name, category FROM entrants ORDER BY rowid").fetchall()
        return StartList(Entrant(*row) for row in rows) if rows else None

    def _records_by_id(self, ids: list[int]) -> Iterator[PhotoRecord]:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            yield from self._records(f"WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk))

    def export(self, fmt: str) -> str:
        """json: {"<photo file name>": ["1234", ...]} for every photo (empty where none was read); csv: one row
        per number (photo, number, confidence, box, and how it was decided: snapped, propagated from a source photo,
        ...), and one with an empty number per photo without any. Hidden decisions are not exported."""
        records = self.photos()
        if fmt == "json":
            return json.dumps({r.path: sorted({n.number for n in r.numbers}) for r in records}, indent=1) + "\n"
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["photo", "number", "confidence", "x1", "y1", "x2", "y2", "error", "decision", "read",
                             "reason", "source_photo"])  # fmt: skip
            for r in records:
                for n in r.numbers:
                    writer.writerow([r.path, n.number, f"{n.confidence:.3f}", *n.box, "", n.status, n.read, n.reason,
                                     n.source or ""])  # fmt: skip
                if not r.numbers:
                    writer.writerow([r.path, "", "", "", "", "", "", r.error or "", "", "", "", ""])
            return out.getvalue()
        if fmt == "corrections":  # what people corrected, beside what the machine had read: training material
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["photo", "number", "action", "machine_numbers", "corrected_at"])
            read = {path: " ".join(sorted({r.read.number for r in runners if r.read.number}))
                    for path, runners in self.runners_by_path().items()}  # fmt: skip
            for path, number, action, created in self._current_corrections():
                writer.writerow([path, number, action, read.get(path, ""), f"{created:.0f}"])
            return out.getvalue()
        raise ValueError(f"unknown export format {fmt!r}: json, csv or corrections")
