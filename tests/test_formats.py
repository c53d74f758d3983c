"""Every photo format a photographer shoots: RAW through its embedded preview, HEIC, TIFF; files that are not
photos, or broken, named in the run's summary with the reason."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from jerseynum.cli import main
from jerseynum.io import ImageError, decode_image
from jerseynum.photos.index import PhotoIndex
from jerseynum.photos.tagger import tag_folder
from jerseynum.web.server import make_server
from tests.test_photos import ShadeTagger, write_photos

REPO = Path(__file__).resolve().parents[1]


def dng(shade: int) -> bytes:
    """A minimal DNG: 320 x 240 linear raw data and a 160 x 120 RGB preview of grey `shade`, as a camera embeds."""
    tifffile = pytest.importorskip("tifffile")
    raw = np.full((240, 320, 3), shade * 256, np.uint16)
    out = io.BytesIO()
    with tifffile.TiffWriter(out) as tif:
        tif.write(np.full((120, 160, 3), shade, np.uint8), photometric="rgb", subfiletype=1, subifds=1,
                  extratags=[(50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, "jerseynum test", True)])  # fmt: skip
        tif.write(raw, photometric=34892, subfiletype=0)  # LinearRaw
    return out.getvalue()


def heic(shade: int) -> bytes:
    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    out = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), shade, np.uint8)).save(out, format="HEIF", quality=95)
    return out.getvalue()


def test_raw_is_read_through_its_preview_and_scaled_to_the_full_image():
    image, scale = decode_image(dng(70), "IMG_0001.DNG")
    assert image.shape == (120, 160, 3) and scale == 2.0 and abs(int(image.mean()) - 70) <= 1


def test_heic_decodes():
    image, scale = decode_image(heic(90), "IMG_0002.HEIC")
    assert image.shape == (48, 64, 3) and scale == 1 and abs(int(image.mean()) - 90) <= 3


@pytest.mark.parametrize(("name", "needs"), [("IMG_0003.NEF", "rawpy"), ("IMG_0004.HEIC", "pillow-heif")])
def test_a_format_whose_reader_is_not_installed_is_an_unreadable_photo_that_names_it(name, needs, monkeypatch):
    monkeypatch.setitem(sys.modules, needs.replace("-", "_"), None)  # as an install without it
    with pytest.raises(ImageError, match=f"needs {needs}"):
        decode_image(b"photo bytes", name)


def test_a_name_that_is_no_utf8_a_linked_folder_and_the_index_itself_are_skipped(tmp_path, monkeypatch, capsys):
    photos, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    photos.mkdir()
    elsewhere.mkdir()
    good = cv2.imencode(".jpg", np.full((40, 40, 3), 50, np.uint8))[1].tobytes()
    (photos / "ok.jpg").write_bytes(good)
    (elsewhere / "far.jpg").write_bytes(good)
    os.symlink(elsewhere, photos / "linked")
    with open(os.path.join(os.fsencode(photos), b"caf\xe9.jpg"), "wb") as latin1_named:  # a zip made on Windows
        latin1_named.write(good)
    monkeypatch.setattr("jerseynum.photos.tagger.tag_folder.__defaults__",  # the factory and version
                        (ShadeTagger, "v1", *tag_folder.__defaults__[2:]))
    for run in range(2):  # the index kept in the photo folder is no photo of it, on the rerun either
        assert main(["tag", str(photos), "--index", str(photos / "race.db"), "-q"]) == 0
        out = capsys.readouterr().out
        assert f"1 photo: {1 - run} tagged" in out and "2 other files skipped" in out and "race.db" not in out.split(";")[0]
        assert "skipped: caf\\xe9.jpg: its name is not UTF-8 text: rename it" in out
        assert "skipped: linked: a link to a folder, not followed" in out
    with PhotoIndex(photos / "race.db") as index:
        assert list(index.known()) == ["ok.jpg"]


def test_a_folder_of_every_format_is_tagged_and_the_summary_names_what_was_skipped(tmp_path, monkeypatch, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "raw.DNG").write_bytes(dng(70))
    (photos / "phone.heic").write_bytes(heic(90))
    cv2.imwrite(str(photos / "scan.tif"), np.full((24, 32, 3), 110, np.uint8))
    good = cv2.imencode(".jpg", np.full((40, 40, 3), 50, np.uint8))[1].tobytes()
    (photos / "broken.jpg").write_bytes(good[:30])
    (photos / "notes.txt").write_text("start at 9")
    (photos / "raw.xmp").write_text("<x:xmpmeta/>")  # a sidecar: not a photo, not worth a line
    (photos / ".DS_Store").write_bytes(b"\0")
    monkeypatch.setattr("jerseynum.photos.tagger.tag_folder.__defaults__",  # the factory and version
                        (ShadeTagger, "v1", *tag_folder.__defaults__[2:]))
    assert main(["tag", str(photos), "--index", str(tmp_path / "race.db"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "4 photos: 4 tagged" in out and "1 unreadable" in out and "1 other file skipped" in out
    assert "unreadable: broken.jpg: not a decodable image" in out
    assert "skipped: notes.txt: not a photo format (.txt)" in out and "raw.xmp" not in out
    with PhotoIndex(tmp_path / "race.db") as index:
        found = {r.path: (r.width, r.height, [(n.number, n.box) for n in r.numbers]) for r in index.photos()}
    # ShadeTagger reads 100 + the mean grey and boxes (1, 2, 30, 20): on the RAW file's half-size preview,
    # doubled to the full image's pixels
    assert found["raw.DNG"] == (320, 240, [("170", (2, 4, 60, 40))])
    assert found["phone.heic"][2][0][0] in {"189", "190", "191"} and found["scan.tif"][2] == [("210", (1, 2, 30, 20))]
    assert found["broken.jpg"] == (None, None, [])


def test_the_photo_view_shows_formats_browsers_cannot_as_jpeg(tmp_path):
    import urllib.request

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "scan.tif"), np.full((24, 32, 3), 110, np.uint8))
    tag_folder(photos, tmp_path / "race.db", ShadeTagger, version="v1", workers=1, progress=False)
    server = make_server(tmp_path / "race.db", photos).start()
    try:
        with PhotoIndex(tmp_path / "race.db") as index:
            (photo,) = index.photos()
        url = f"http://127.0.0.1:{server.port}/image/{photo.id}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body, kind = response.read(), response.headers["Content-Type"]
        assert kind == "image/jpeg" and body[:2] == b"\xff\xd8"
        assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (24, 32, 3)
    finally:
        server.stop()


def test_warnings_go_above_the_progress_bar_not_into_it(tmp_path):
    """A run with its progress bar on (as in a terminal) and a warning mid-run: the warning is a line of its own."""
    photos = tmp_path / "photos"
    write_photos(photos, [10, 20, 30, 40])
    (photos / "photo1.png").write_bytes(b"\x89PNG broken")
    script = ("import sys; from jerseynum.photos import tagger; from tests.test_photos import ShadeTagger;"
              "tagger.tag_folder.__defaults__ = (ShadeTagger, 'v1', *tagger.tag_folder.__defaults__[2:]);"
              "from jerseynum.cli import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", script, "tag", str(photos), "--index", str(tmp_path / "race.db"),
                          "--workers", "1"], capture_output=True, text=True, cwd=REPO, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stderr.split("\n")
    warning = [line for line in lines if "photo1.png" in line]
    assert len(warning) == 1 and "tagging photos" in run.stderr  # the bar was drawn
    # tqdm.write clears the bar's line first ("\r" + spaces + "\r"): what is left on that line is the warning
    assert warning[0].split("\r")[-1].startswith("WARNING jerseynum: photo1.png"), repr(warning[0])
