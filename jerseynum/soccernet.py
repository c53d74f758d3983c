"""SoccerNet jersey-2023: download with the SoccerNet package, or extract zips fetched elsewhere, and verify.

The data lands as `<dest>/<split>/images/<tracklet id>/<frame>.jpg` (plus `<split>_gt.json` where the split has
public labels), the layout `inference.py` reads. Each split is extracted into a hidden temporary folder beside
its final place and renamed only once it is complete and verified, so an interrupted or failed run never
leaves a half-extracted split where the tools would take it for data. Without network the download fails
within seconds (a plain connection test comes first), with a message saying how to use a local copy; a server
that accepts the connection and then stalls fails it after the connect and read timeout (`DOWNLOAD_TIMEOUT`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

TASK = "jersey-2023"
HOST = ("huggingface.co", 443)  # where SoccerNet 0.2 fetches jersey-2023 from
# Tracklets per split in the published data (SoccerNet jersey-2023 paper); a different count is reported.
EXPECTED_TRACKLETS = {"train": 1427, "test": 1211, "challenge": 1426}
SPLITS = tuple(EXPECTED_TRACKLETS)
DOWNLOAD_TIMEOUT = 30.0  # seconds a connection or a read may wait before the download is given up as stalled


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


def read_ground_truth(path: Path) -> dict[str, int]:
    """A challenge ground-truth file, {tracklet id: number, -1 where none}; DataError says what is wrong with it."""
    try:
        labels = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"ground truth not found: {path}") from None
    except (OSError, ValueError) as error:  # a folder, unreadable, not text or not JSON
        raise DataError(f"{path} is not a ground-truth JSON file ({error})") from error
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"{path} is not a ground-truth file: expected {{tracklet id: number, -1 where none}}")
    for tracklet, number in labels.items():
        if not isinstance(number, int) or isinstance(number, bool):
            raise DataError(f"{path}: tracklet {tracklet!r} is labelled {number!r}, not a whole number (-1: none)")
    return labels


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
        try:
            ids = set(json.loads(labels.read_text()))
        except (ValueError, TypeError) as error:  # not JSON, not text, or not an object of ids
            raise DataError(f"{labels} is not a labels file ({error})") from error
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
    except DataError as error:  # an unsafe member or a split without its layout (not a damaged member)
        # the split's own check names the temporary folder, which is gone once this returns: name the archive
        where = str(error).replace(f"{partial}{os.sep}", f"{archive}: ").replace(str(partial), str(archive))
        raise DataError(where) from None
    except zipfile.BadZipFile as error:
        raise DataError(f"{archive} is not a valid zip file ({error}): download it again") from error
    # A damaged member: corrupt deflate data (zlib.error), cut short (EOFError), an unsupported method or
    # encryption (NotImplementedError, RuntimeError), a name the filesystem refuses or a full disk (OSError).
    except (zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
        raise DataError(f"{archive} cannot be extracted ({type(error).__name__}: {error}): download it again") from error
    except OSError as error:  # the archive may be whole: a full disk, or a file where a folder must go
        raise DataError(f"cannot extract {archive} into {dest}: {error.strerror or error}") from error
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return SplitReport(split, final, report.tracklets, report.frames,
                       final / report.labels.name if report.labels else None, report.warning)  # fmt: skip


def from_zips(folder: Path, dest: Path, splits: tuple[str, ...] = SPLITS) -> list[SplitReport]:
    """Extract `<folder>/<split>.zip` for each split (a local copy downloaded elsewhere)."""
    if not Path(folder).is_dir():
        raise DataError(f"not a folder: {folder} (give the folder that holds {', '.join(f'{s}.zip' for s in splits)})")
    archives = {split: Path(folder) / f"{split}.zip" for split in splits}
    missing = [str(path) for path in archives.values() if not path.is_file()]
    if missing:
        raise DataError(f"not found: {', '.join(missing)}")
    try:
        Path(dest).mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file where the folder must go
        raise DataError(f"cannot make the data folder {dest}: {error.strerror or error}") from error
    return [extract_split(archive, Path(dest), split) for split, archive in archives.items()]


@contextmanager
def hub_timeouts(seconds: float) -> Iterator[None]:
    """Every request huggingface_hub sends meanwhile waits at most `seconds` to connect and for each read.

    `socket.setdefaulttimeout` would not reach its sockets: httpcore sets each socket's timeout from the request
    before every read, and huggingface_hub asks for none on its API calls (`repo_info` waits forever on a silent
    server). So a request hook on its HTTP client sets the request's timeouts, on every client its factory makes
    (it makes a new one after an SSL error). Xet transfers run in hf_xet's own network stack, which no Python
    setting reaches, so meanwhile the files come over plain HTTPS instead. Both are restored afterwards."""
    import httpx2
    from huggingface_hub import constants, set_client_factory
    from huggingface_hub.utils import _http

    def limit(request: httpx2.Request) -> None:
        request.extensions["timeout"] = {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}

    def timed_client() -> httpx2.Client:
        client = previous_factory()
        client.event_hooks["request"].append(limit)
        return client

    previous_factory = _http._GLOBAL_CLIENT_FACTORY  # huggingface_hub has a setter for it but no getter
    xet_disabled = constants.HF_HUB_DISABLE_XET
    set_client_factory(timed_client)
    constants.HF_HUB_DISABLE_XET = True
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = xet_disabled
        set_client_factory(previous_factory)


def stalled(error: BaseException | None) -> bool:
    """Whether `error`, or one it was raised from, is a timeout (huggingface_hub wraps them in its own errors)."""
    import httpx2

    while error is not None:
        if isinstance(error, (httpx2.TimeoutException, TimeoutError)):
            return True
        error = error.__cause__ or error.__context__
    return False


def download(dest: Path, splits: tuple[str, ...] = SPLITS, timeout: float = DOWNLOAD_TIMEOUT) -> list[SplitReport]:
    """Download the splits with SoccerNet's downloader into `dest/.zips`, then extract and verify them. A server
    that does not answer within `timeout` seconds (to connect, or to any read) fails the download."""
    dest = Path(dest)
    check_reachable(HOST)
    import httpx2
    from huggingface_hub import constants
    from SoccerNet.Downloader import SoccerNetDownloader

    zips = dest / ".zips"
    try:
        zips.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot write to {dest}: {error.strerror or error}") from error
    try:
        with hub_timeouts(timeout):
            SoccerNetDownloader(LocalDirectory=str(zips)).downloadDataTask(task=TASK, split=list(splits))
    except (OSError, httpx2.HTTPError) as error:  # huggingface_hub's errors, network ones included, are these
        if stalled(error):
            host = urlsplit(constants.ENDPOINT).hostname
            raise DataError(f"{host} did not answer within {timeout:g} s; the download was given up.") from error
        raise DataError(f"the download failed: {error}") from error
    return from_zips(zips / TASK, dest, splits)
