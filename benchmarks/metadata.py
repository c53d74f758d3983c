"""Writing keywords into race photos: ExifTool (through PyExifTool, one long-running process, what
`photos/metadata.py` uses) against pyexiv2 (libexiv2 in-process), on copies of the RBNR photos.

Per photo: two keywords (BIB:<n> and a name) added to IPTC Keywords and XMP dc:subject, into the JPEG; and the
same into a new XMP sidecar. Medians of milliseconds per photo, one run, both writers on the same copies in turn.
pyexiv2 is not a dependency of jerseynum: `pip install pyexiv2` to measure it (it is skipped otherwise).

    python benchmarks/metadata.py [--data ../shared/data] [--photos 40]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from jerseynum.io import write_json_atomic
from jerseynum.photos.metadata import MetadataWriter, sidecar_path
from jerseynum.training import require_sets

REPO = Path(__file__).resolve().parents[1]
KEYWORDS = ["BIB:2605", "Zoë Ménard"]
EMPTY_XMP = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
             '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta><?xpacket end="w"?>')


def exiftool_times(photos: list[Path], mode: str) -> list[float]:
    seconds = []
    with MetadataWriter() as writer:
        for photo in photos:
            start = time.perf_counter()
            writer.write(photo, KEYWORDS, mode)
            seconds.append(time.perf_counter() - start)
    return seconds


def pyexiv2_times(photos: list[Path], mode: str) -> list[float]:
    import pyexiv2

    seconds = []
    for photo in photos:
        start = time.perf_counter()
        if mode == "keywords":
            with pyexiv2.Image(str(photo)) as image:
                iptc = image.read_iptc().get("Iptc.Application2.Keywords", [])
                xmp = image.read_xmp().get("Xmp.dc.subject", [])
                image.modify_iptc({"Iptc.Application2.Keywords": list(dict.fromkeys([*iptc, *KEYWORDS]))})
                image.modify_xmp({"Xmp.dc.subject": list(dict.fromkeys([*xmp, *KEYWORDS]))})
        else:  # pyexiv2 writes no file from nothing: an empty XMP packet first
            sidecar = sidecar_path(photo)
            sidecar.write_text(EMPTY_XMP)
            with pyexiv2.Image(str(sidecar)) as image:
                image.modify_xmp({"Xmp.dc.subject": KEYWORDS})
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "metadata.json")
    args = parser.parse_args()
    try:
        require_sets(args.data, ["rbnr_bib_photos"])
    except FileNotFoundError as error:
        parser.error(str(error))
    sources = sorted((args.data / "rbnr_bib_photos" / "images").iterdir())[: args.photos]
    writers = {"ExifTool (PyExifTool)": exiftool_times}
    try:
        import pyexiv2  # noqa: F401

        writers["pyexiv2"] = pyexiv2_times
    except ImportError:
        print("pyexiv2 is not installed: only ExifTool is measured")
    results = {}
    for mode in ("keywords", "sidecar"):
        for name, measure in writers.items():
            with tempfile.TemporaryDirectory() as folder:
                photos = []
                for source in sources:
                    shutil.copy(source, Path(folder) / source.name)
                    photos.append(Path(folder) / source.name)
                    photos[-1].chmod(0o644)
                median = statistics.median(measure(photos, mode)) * 1000
            results[f"{name}, {mode}"] = round(median, 1)
            print(f"{name:22} {mode:9} {median:6.1f} ms per photo (median of {len(sources)})")
    write_json_atomic(args.json, {"photos": len(sources), "ms_per_photo_median": results})


if __name__ == "__main__":
    main()
