"""SoccerNet jersey-2023: download with the SoccerNet package, or extract zips fetched elsewhere, and verify.

The data lands as `<dest>/<split>/images/<tracklet id>/<frame>.jpg` (plus `<split>_gt.json` where the split has
public labels), the layout `inference.py` reads. Each split is extracted into a hidden temporary folder beside
its final place and renamed only once it is complete and verified, so an interrupted or failed run never
leaves a half-extracted split where the tools would take it for data. Without network the download fails
within seconds (a plain connection test comes first), with a message saying how to use a local copy.
"""

from __future__ import annotations

import json
import shutil
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path

TASK = "jersey-2023"
HOST = ("huggingface.co", 443)  # where SoccerNet 0.2 fetches jersey-2023 from
# Tracklets per split in the published data (SoccerNet jersey-2023 paper); a different count is reported.
EXPECTED_TRACKLETS = {"train": 1427, "test": 1211, "challenge": 1426}
SPLITS = tuple(EXPECTED_TRACKLETS)


class DataError(RuntimeError):
    """The data could not be fetched or does not have the expected layout; the message says what to do."""


@dataclass(frozen=True)
class SplitReport:
    split: str
    path: Path
    tracklets: int
    frames: int
    labels: Path | None  # the split's ground truth file, where it has one
    warning: str | None = None


def offline_help(dest: Path) -> str:
    return (f"Without network, download SoccerNet jersey-2023 elsewhere (https://huggingface.co/datasets/"
            f"SoccerNet/SN-Jersey-2023: train.zip, test.zip, challenge.zip) and either run "
            f"`python download_data.py --from-zips FOLDER_WITH_THE_ZIPS --dest {dest}`, or point the tools at an "
            f"extracted copy directly: `python inference.py COPY/test/images -o predictions.json "
            f"--gt COPY/test/test_gt.json`.")  # fmt: skip


def check_reachable(host: tuple[str, int], timeout: float = 3.0) -> None:
    """Fail fast (seconds, not the downloader's minutes of retries) when the data's host cannot be reached."""
    try:
        socket.create_connection(host, timeout=timeout).close()
    except OSError as error:
        raise DataError(f"cannot reach {host[0]}, where SoccerNet's {TASK} data is hosted ({error}).") from error


def verify_split(folder: Path, split: str) -> SplitReport:
    """Check a split's layout: images/<tracklet>/<frames> and, for train and test, its ground truth."""
    images = folder / "images"
    if not images.is_dir():
        raise DataError(f"{folder} has no images/ folder: not a SoccerNet {TASK} split")
    tracklets = [p for p in images.iterdir() if p.is_dir()]
    if not tracklets:
        raise DataError(f"{images} holds no tracklet folders")
    frames = sum(1 for t in tracklets for f in t.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    labels = folder / f"{split}_gt.json"
    if labels.is_file():
        ids = set(json.loads(labels.read_text()))
        missing = {t.name for t in tracklets} - ids
        if missing:
            raise DataError(f"{labels} has no label for {len(missing)} tracklets, e.g. {sorted(missing)[:3]}")
    elif split != "challenge":
        raise DataError(f"{folder} has no {labels.name}")
    expected = EXPECTED_TRACKLETS.get(split)
    warning = None
    if expected and len(tracklets) != expected:
        warning = f"{split}: {len(tracklets)} tracklets, the published split has {expected}"
    return SplitReport(split, folder, len(tracklets), frames, labels if labels.is_file() else None, warning)


def extract_split(archive: Path, dest: Path, split: str) -> SplitReport:
    """Extract `archive` as `dest/split`, all or nothing; an existing complete split is left as it is."""
    final = dest / split
    if final.is_dir():
        return verify_split(final, split)
    partial = dest / f".{split}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():  # refuse members that would land outside the folder
                if member.startswith("/") or ".." in Path(member).parts:
                    raise DataError(f"{archive}: unsafe path in the archive: {member}")
            zipped.extractall(partial)
        # The zips hold either the split's folder or its content.
        root = partial / split if (partial / split / "images").is_dir() else partial
        report = verify_split(root, split)
        root.rename(final)
    except zipfile.BadZipFile as error:
        raise DataError(f"{archive} is not a valid zip file ({error}): download it again") from error
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return SplitReport(split, final, report.tracklets, report.frames,
                       final / report.labels.name if report.labels else None, report.warning)  # fmt: skip


def from_zips(folder: Path, dest: Path, splits: tuple[str, ...] = SPLITS) -> list[SplitReport]:
    """Extract `<folder>/<split>.zip` for each split (a local copy downloaded elsewhere)."""
    archives = {split: Path(folder) / f"{split}.zip" for split in splits}
    missing = [str(path) for path in archives.values() if not path.is_file()]
    if missing:
        raise DataError(f"not found: {', '.join(missing)}")
    Path(dest).mkdir(parents=True, exist_ok=True)
    return [extract_split(archive, Path(dest), split) for split, archive in archives.items()]


def download(dest: Path, splits: tuple[str, ...] = SPLITS) -> list[SplitReport]:
    """Download the splits with SoccerNet's downloader into `dest/.zips`, then extract and verify them."""
    dest = Path(dest)
    check_reachable(HOST)
    from SoccerNet.Downloader import SoccerNetDownloader

    zips = dest / ".zips"
    zips.mkdir(parents=True, exist_ok=True)
    SoccerNetDownloader(LocalDirectory=str(zips)).downloadDataTask(task=TASK, split=list(splits))
    return from_zips(zips / TASK, dest, splits)
