"""Tags where photo tools read them: each photo's bib numbers (and runners' names, from the start list) as
keywords that Lightroom, Photo Mechanic and Capture One show and search.

Keywords follow the photographers' convention, `BIB:1234` per number, plus the runner's name where the start list
gives one. Two ways to write them:
- `sidecar` (the default, and the only way for RAW files): an XMP file beside the photo (`IMG_0001.xmp`, Adobe's
  naming) holding them as XMP `dc:subject`. The photo itself is never touched. An existing sidecar (Lightroom's
  develop settings) is edited in place and keeps everything else.
- `keywords`: into the photo file (JPEG, TIFF), as IPTC Keywords and XMP `dc:subject`; the image data is copied
  untouched.

The writing is ExifTool's (Debian `libimage-exiftool-perl`, driven through PyExifTool in one long-running process):
the reference metadata writer, which keeps every other tag, writes a file under a temporary name and renames it
over the original only once it is whole (so a crash never leaves a half-written photo), and is the one photo tools
are tested against. pyexiv2 (libexiv2 in-process) is faster, 0.6 ms a photo against 6.7 ms (`benchmarks/metadata.py`,
RBNR photos), but both are nothing beside the 0.6 s a photo takes to read, and pyexiv2 neither makes a sidecar from
nothing nor renames a finished file into place. Only keywords a photo lacks are written, so a rerun writes nothing.

The index remembers which keywords jerseynum added to which photo, and where (the photo or its sidecar). A number
removed or corrected since (`jerseynum correct`, the review page) has its keywords taken out on the next run, in
either mode; keywords it did not add (a photographer's own, or one that any tag of the photo held already) are
never taken out.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Self

MODES = ("sidecar", "keywords")
IN_FILE_SUFFIXES = {".jpg", ".jpeg", ".tif", ".tiff"}  # where `keywords` writes into the photo; others get a sidecar
# Where keywords go ("photo": into the JPEG or TIFF itself), and the tags that hold them there.
KEYWORD_TAGS = {"photo": ("IPTC:Keywords", "XMP-dc:Subject"), "sidecar": ("XMP-dc:Subject",)}
IPTC_KEYWORD_BYTES = 64  # the IPTC standard's limit per keyword; ExifTool cuts longer ones, mid-character too


def tag_value(tag: str, keyword: str) -> str:
    """The keyword as `tag` holds it: an IPTC keyword cut to its 64 bytes at a character's end, as written and as
    read back (a name cut by ExifTool alone would read back other than it was given, and be added again)."""
    if not tag.startswith("IPTC:"):
        return keyword
    return keyword.encode()[:IPTC_KEYWORD_BYTES].decode(errors="ignore")


class MetadataError(RuntimeError):
    """ExifTool is missing or broken: nothing can be written."""


@dataclass
class MetadataReport:
    photos: int = 0  # photos with keywords to write
    written: int = 0  # files (photos or sidecars) that gained keywords
    unchanged: int = 0  # already held every keyword
    keywords: int = 0  # keywords added
    withdrawn: int = 0  # keywords taken out: jerseynum's own, of numbers no longer shown
    withdrawn_photos: int = 0  # photos they were taken out of
    failed: dict[str, str] = field(default_factory=dict)  # photo path -> why


class KeywordChange(NamedTuple):
    added: list[str]  # keywords written where a tag lacked them
    removed: list[str]
    new: list[str]  # those of `added` that no tag held before: jerseynum's own, the only ones it may take back


def keyword_place(photo: Path, mode: str) -> str:
    """Where `mode` puts the photo's keywords: "photo" (`keywords` mode, a JPEG or TIFF) or "sidecar"."""
    if mode not in MODES:
        raise ValueError(f"unknown metadata mode {mode!r}: {' or '.join(MODES)}")
    return "photo" if mode == "keywords" and photo.suffix.lower() in IN_FILE_SUFFIXES else "sidecar"


def keywords_for(numbers: Iterable[str], names: dict[str, str]) -> list[str]:
    """The keywords of a photo showing these numbers: BIB:<number> each, then the named runners' names."""
    numbers = sorted(set(numbers))
    named = [names[n] for n in numbers if names.get(n)]
    return [f"BIB:{number}" for number in numbers] + list(dict.fromkeys(named))  # two bibs, one name: once


def sidecar_path(photo: Path) -> Path:
    """Adobe's sidecar name: the photo's name with `.xmp` for its extension (IMG_0001.CR2 -> IMG_0001.xmp)."""
    return photo.with_suffix(".xmp")


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


class MetadataWriter:
    """One ExifTool process for a whole batch. Use as a context manager."""

    def __init__(self) -> None:
        if shutil.which("exiftool") is None:
            raise MetadataError("writing keywords needs ExifTool: install it (Debian/Ubuntu: apt install "
                                "libimage-exiftool-perl; macOS: brew install exiftool); scripts/install.sh does")  # fmt: skip
        import exiftool

        # -charset filename=utf8: file names with accents; IPTC written as UTF-8 (names on a start list).
        self._tool = exiftool.ExifToolHelper(common_args=["-G1", "-charset", "filename=utf8"])

    def __enter__(self) -> Self:
        self._tool.run()
        return self

    def __exit__(self, *exc) -> None:
        self._tool.terminate()

    def _existing(self, file: Path, tags: tuple[str, ...]) -> dict[str, list[str]]:
        (found,) = self._tool.get_tags([str(file)], list(tags))
        # get_tags keys carry the group it was found in ("IPTC:Keywords", "XMP-dc:Subject")
        return {tag: _as_list(found.get(tag)) for tag in tags}

    def write(self, photo: Path, keywords: list[str], mode: str = "sidecar", withdrawn: Iterable[str] = ()
              ) -> KeywordChange:  # fmt: skip
        """Add the keywords the photo (or its sidecar, as `mode` says) lacks, take out those of `withdrawn` it
        holds, and say which."""
        return self.update(photo, keyword_place(photo, mode), keywords, withdrawn)

    def update(self, photo: Path, place: str, keywords: list[str], withdrawn: Iterable[str] = ()) -> KeywordChange:
        """`write` into the `place` given ("photo" or "sidecar", `keyword_place`)."""
        # A photo that is a link is written where it points: ExifTool's rename over it would replace the link.
        target = photo.resolve() if place == "photo" else sidecar_path(photo)
        tags = KEYWORD_TAGS[place]
        have = self._existing(target, tags) if target.exists() else {tag: [] for tag in tags}
        held = lambda keyword: [tag_value(tag, keyword) in have[tag] for tag in tags]
        missing = [keyword for keyword in keywords if not all(held(keyword))]
        gone = [keyword for keyword in dict.fromkeys(withdrawn) if keyword not in keywords and any(held(keyword))]
        change = KeywordChange(missing, gone, [keyword for keyword in missing if not any(held(keyword))])
        if not missing and not gone:
            return change
        # "-=" then "+=": ExifTool's idiom for adding a list item only where it is not there yet
        args = [f"-{tag}{op}={tag_value(tag, keyword)}" for tag in tags for keyword in missing for op in ("-", "+")]
        args += [f"-{tag}-={tag_value(tag, keyword)}" for tag in tags for keyword in gone]
        if target.exists():
            # ExifTool writes a temporary file and renames it over the original once whole.
            self._tool.execute("-overwrite_original", "-codedcharacterset=utf8", *args, str(target))
        else:  # a new sidecar, made whole under another name first
            temporary = target.with_name(f".{target.name}.jerseynum-tmp.xmp")
            temporary.unlink(missing_ok=True)
            self._tool.execute("-o", str(temporary), *args)
            os.replace(temporary, target)
        return change


def write_index_metadata(index_path: Path, mode: str = "sidecar", progress: bool = True) -> MetadataReport:
    """Write every photo's shown numbers (and named runners) of the index as keywords, and take out the keywords
    it added earlier that no longer hold. A photo whose file was changed by it (`keywords` mode) gets its new size,
    time and hash in the index, so `tag` does not read it again."""
    from exiftool.exceptions import ExifToolException
    from tqdm import tqdm

    from jerseynum.photos.index import PhotoIndex, file_sha256

    report = MetadataReport()
    with PhotoIndex(index_path) as index:
        root = index.photos_root
        start_list = index.start_list()
        names = {e.bib: e.name for e in start_list.entrants} if start_list else {}
        written = index.keywords_written()
        photos = [record for record in index.photos() if record.numbers or record.path in written]
        known = index.known()
        report.photos = sum(bool(record.numbers) for record in photos)
        with MetadataWriter() as writer:
            for record in tqdm(photos, desc="writing keywords", unit="photo", disable=not progress or not photos):
                file = root / record.path
                # The numbers are of the photo as tagged: none go into a file that is gone or holds another photo
                # now (its new hash would be recorded, and `tag` would never read it).
                if (changed := _changed_since_tagged(file, known[record.path])) is not None:
                    report.failed[record.path] = f"{changed} since it was tagged: run `jerseynum tag` first"
                    continue
                keywords = keywords_for((n.number for n in record.numbers), names)
                here, ours = keyword_place(file, mode), written.get(record.path, {})
                added, removed = [], []
                try:
                    # Keywords of numbers no longer shown come out of wherever an earlier run put them.
                    for place in dict.fromkeys([here, *ours]):
                        withdrawn = ours.get(place, set()) - set(keywords)
                        if place != here and not withdrawn:
                            continue
                        change = writer.update(file, place, keywords if place == here else [], withdrawn)
                        # withdrawn ones the file no longer holds (taken out by hand) are forgotten too
                        index.record_keywords(record.path, place, change.new, withdrawn)
                        added += change.added
                        removed += change.removed
                        if place == "photo" and (change.added or change.removed):
                            stat = file.stat()
                            index.record_file(record.path, stat.st_size, stat.st_mtime_ns, file_sha256(file))
                except (OSError, ExifToolException) as error:  # a photo gone or unwritable: reported, batch goes on
                    report.failed[record.path] = str(error).strip() or type(error).__name__
                    continue
                if record.numbers and not added:
                    report.unchanged += 1
                report.written += bool(added)
                report.keywords += len(added)
                report.withdrawn += len(removed)
                report.withdrawn_photos += bool(removed)
    return report


def _changed_since_tagged(file: Path, known: tuple[int, int, str, str]) -> str | None:
    """"gone" or "changed" where the photo's file is not the one the index read (by size and time, else by its
    content hash: a copy that kept the content is the same photo); None where it is."""
    from jerseynum.photos.index import file_sha256

    size, mtime_ns, sha256, _ = known
    try:
        stat = file.stat()
        if (stat.st_size, stat.st_mtime_ns) == (size, mtime_ns) or file_sha256(file) == sha256:
            return None
    except FileNotFoundError:
        return "gone"
    except OSError:
        return None  # unreadable: the write says why
    return "changed"
