"""Keywords where photo tools read them (photos/metadata.py): in the photo or in an XMP sidecar, read back by an
independent reader (Pillow's IPTC reader, the XMP packet parsed as XML), pixels untouched, nothing written twice."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, IptcImagePlugin

from jerseynum.cli import main
from jerseynum.photos.metadata import MetadataWriter, keywords_for, sidecar_path
from jerseynum.photos.startlist import Entrant
from jerseynum.photos.tagger import tag_folder
from tests.test_photos import ShadeTagger, write_photos

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None,
                                reason="ExifTool is not installed (scripts/install.sh installs it)")  # fmt: skip

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC_SUBJECT = "{http://purl.org/dc/elements/1.1/}subject"


def iptc_keywords(path: Path) -> list[str]:
    with Image.open(path) as image:
        info = IptcImagePlugin.getiptcinfo(image) or {}
    value = info.get((2, 25), [])
    return [v.decode() for v in (value if isinstance(value, list) else [value])]


def xmp_subjects(xml: bytes) -> list[str]:
    root = ET.fromstring(xml[xml.index(b"<x:xmpmeta") : xml.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")])
    return [li.text for subject in root.iter(DC_SUBJECT) for li in subject.iter(f"{RDF}li")]


def jpeg_xmp(path: Path) -> bytes:
    data = path.read_bytes()
    return data[data.index(b"http://ns.adobe.com/xap/1.0/\x00") :]


def image_data(path: Path) -> bytes:
    """A JPEG's compressed image, from its first start-of-scan marker: what no metadata writer may change."""
    data = path.read_bytes()
    return data[data.index(b"\xff\xda") :]


@pytest.fixture
def photo(tmp_path) -> Path:
    """A JPEG that already carries a photographer's keyword."""
    path = tmp_path / "race" / "IMG_0001.jpg"
    path.parent.mkdir()
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    cv2.imwrite(str(path), image)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-IPTC:Keywords=Marathon 2026",
                    "-XMP-dc:Subject=Marathon 2026", str(path)], check=True)  # fmt: skip
    return path


def test_keywords_go_into_the_photo_beside_its_own_and_only_once(photo):
    before = image_data(photo)
    keywords = keywords_for(["2605", "17"], {"2605": "Zoë Ménard"})
    assert keywords == ["BIB:17", "BIB:2605", "Zoë Ménard"]
    with MetadataWriter() as writer:
        assert len(writer.write(photo, keywords, "keywords").added) == 3
        written = photo.read_bytes()
        assert len(writer.write(photo, keywords, "keywords").added) == 0  # a rerun adds nothing, nor rewrites the file
    assert photo.read_bytes() == written and image_data(photo) == before
    assert iptc_keywords(photo) == ["Marathon 2026", "BIB:17", "BIB:2605", "Zoë Ménard"]
    assert xmp_subjects(jpeg_xmp(photo)) == ["Marathon 2026", "BIB:17", "BIB:2605", "Zoë Ménard"]
    assert not sidecar_path(photo).exists() and list(photo.parent.iterdir()) == [photo]  # no temporary left


def test_a_name_longer_than_an_iptc_keyword_is_cut_there_once_and_two_bibs_of_one_name_give_it_once(photo):
    name = "Maria Fernanda de los Ángeles Gutiérrez-Villanueva y Santamaría"  # 66 bytes: the í straddles 64
    keywords = keywords_for(["17", "18"], {"17": name, "18": name})
    assert keywords == ["BIB:17", "BIB:18", name]
    with MetadataWriter() as writer:
        assert len(writer.write(photo, keywords, "keywords").added) == 3
        assert len(writer.write(photo, keywords, "keywords").added) == 0  # the cut name reads back as written
    assert iptc_keywords(photo)[-1] == name[: name.index("í")] and xmp_subjects(jpeg_xmp(photo))[-1] == name


def test_a_photo_that_is_a_link_keeps_its_link_and_its_target_gets_the_keywords(photo, tmp_path):
    link = tmp_path / "linked.jpg"
    link.symlink_to(photo)
    with MetadataWriter() as writer:
        assert len(writer.write(link, ["BIB:42"], mode="keywords").added) == 1
    assert link.is_symlink() and iptc_keywords(photo) == ["Marathon 2026", "BIB:42"]


def test_a_sidecar_leaves_the_photo_alone_and_keeps_what_another_tool_wrote(photo):
    original = photo.read_bytes()
    sidecar = sidecar_path(photo)
    assert sidecar.name == "IMG_0001.xmp"
    with MetadataWriter() as writer:
        assert len(writer.write(photo, ["BIB:2605"], "sidecar").added) == 1
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-xmp:Rating=4", str(sidecar)], check=True)
        assert len(writer.write(photo, ["BIB:2605", "BIB:77"], "sidecar").added) == 1
        assert len(writer.write(photo, ["BIB:2605", "BIB:77"], "sidecar").added) == 0
    assert photo.read_bytes() == original
    xml = sidecar.read_bytes()
    assert xmp_subjects(xml) == ["BIB:2605", "BIB:77"] and b"Rating>4<" in xml or b'Rating="4"' in xml
    assert sorted(p.name for p in photo.parent.iterdir()) == ["IMG_0001.jpg", "IMG_0001.xmp"]


def test_a_raw_file_always_gets_a_sidecar(tmp_path):
    raw = tmp_path / "IMG_0002.CR2"
    raw.write_bytes(b"not parsed: a RAW file is never written")
    with MetadataWriter() as writer:
        assert len(writer.write(raw, ["BIB:9"], "keywords").added) == 1
    assert raw.read_bytes() == b"not parsed: a RAW file is never written"
    assert xmp_subjects((tmp_path / "IMG_0002.xmp").read_bytes()) == ["BIB:9"]


def test_write_metadata_names_runners_and_a_retag_reads_no_photo_again(tmp_path, capsys):
    photos, index = tmp_path / "photos", tmp_path / "race.db"
    write_photos(photos, [10, 20])  # ShadeTagger: 110, 120
    for png in photos.glob("*.png"):  # keywords go into JPEGs
        cv2.imwrite(str(png.with_suffix(".jpg")), np.full((24, 32, 3), int(png.stem[-1]) * 10 + 10, np.uint8))
        png.unlink()
    tag_folder(photos, index, ShadeTagger, version="v1", workers=1, entrants=[Entrant("110", "Ada Lovelace"), Entrant("120")])
    assert main(["write-metadata", "--index", str(index), "--mode", "keywords"]) == 0
    assert "2 of 2 photos with numbers gained 3 keywords" in capsys.readouterr().out
    assert iptc_keywords(photos / "photo0.jpg") == ["BIB:110", "Ada Lovelace"]
    assert iptc_keywords(photos / "photo1.jpg") == ["BIB:120"]
    calls = ShadeTagger.calls
    report = tag_folder(photos, index, ShadeTagger, version="v1", workers=1)
    assert (report.tagged, report.unchanged, ShadeTagger.calls) == (0, 2, calls)  # the new keywords are ours
    assert main(["write-metadata", "--index", str(index), "--mode", "keywords"]) == 0
    assert "0 of 2 photos with numbers gained 0 keywords, 2 had them all" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["keywords", "sidecar"])
def test_keywords_of_a_number_removed_since_are_taken_out_and_only_those_jerseynum_added(tmp_path, capsys, mode):
    photos, index = tmp_path / "photos", tmp_path / "race.db"
    photos.mkdir()
    for k in range(2):
        cv2.imwrite(str(photos / f"photo{k}.jpg"), np.full((24, 32, 3), 10 * k + 10, np.uint8))  # 110, 120
    tag_folder(photos, index, ShadeTagger, version="v1", workers=1,
               entrants=[Entrant("110", "Ada Lovelace"), Entrant("120")])
    # a keyword the photographer wrote, and one the photo held before jerseynum came: neither is ours
    target = (lambda photo: photo) if mode == "keywords" else sidecar_path
    tags = ["-IPTC:Keywords+=Finish line", "-XMP-dc:Subject+=Finish line"] if mode == "keywords" else []
    subprocess.run(["exiftool", "-q", "-overwrite_original", *tags, "-XMP-dc:Subject+=BIB:120",
                    *([] if mode == "keywords" else ["-o", str(target(photos / "photo1.jpg"))]),
                    str(photos / "photo1.jpg")], check=True)  # fmt: skip
    # (in the photo, BIB:120 only in XMP: many tools write no IPTC; jerseynum adds it there, but it is not its own)
    tag_folder(photos, index, ShadeTagger, version="v1", workers=1)  # photo1 changed by hand: read again
    assert main(["write-metadata", "--index", str(index), "--mode", mode]) == 0
    capsys.readouterr()
    assert xmp_subjects(jpeg_xmp(photos / "photo0.jpg") if mode == "keywords" else
                        target(photos / "photo0.jpg").read_bytes()) == ["BIB:110", "Ada Lovelace"]  # fmt: skip
    for name, number in (("photo0", "110"), ("photo1", "120")):  # both numbers turn out wrong
        assert main(["correct", str(photos / f"{name}.jpg"), "--index", str(index), "--remove", number]) == 0
    assert main(["write-metadata", "--index", str(index), "--mode", mode]) == 0
    out = capsys.readouterr().out
    assert "0 of 0 photos with numbers gained 0 keywords" in out
    assert "2 keywords of numbers no longer shown taken out of 1 photo" in out
    def subjects(photo: Path) -> list[str]:
        held = photo.read_bytes() if mode == "keywords" else target(photo).read_bytes()
        if mode == "sidecar":
            return xmp_subjects(held)
        return xmp_subjects(jpeg_xmp(photo)) if b"http://ns.adobe.com/xap/1.0/" in held else []  # all gone: none
    assert subjects(photos / "photo0.jpg") == []  # ours: taken out
    assert subjects(photos / "photo1.jpg") == (["Finish line", "BIB:120"] if mode == "keywords" else ["BIB:120"])
    if mode == "keywords":
        assert iptc_keywords(photos / "photo0.jpg") == []
        assert iptc_keywords(photos / "photo1.jpg") == ["Finish line", "BIB:120"]
    report = tag_folder(photos, index, ShadeTagger, version="v1", workers=1)
    assert report.tagged == 0  # the files jerseynum changed are still known
    assert main(["write-metadata", "--index", str(index), "--mode", mode]) == 0
    assert "taken out" not in capsys.readouterr().out  # nothing left to take back


def test_keywords_come_out_of_wherever_an_earlier_run_in_another_mode_put_them(tmp_path, capsys):
    photos, index = tmp_path / "photos", tmp_path / "race.db"
    write_photos(photos, [10, 20])  # PNGs, 110 and 120: `keywords` mode gives a PNG a sidecar
    photo = photos / "photo1.jpg"
    cv2.imwrite(str(photo), cv2.imread(str(photos / "photo1.png")))
    (photos / "photo1.png").unlink()
    tag_folder(photos, index, ShadeTagger, version="v1", workers=1)
    assert main(["write-metadata", "--index", str(index), "--mode", "keywords"]) == 0
    assert xmp_subjects((photos / "photo0.xmp").read_bytes()) == ["BIB:110"] and iptc_keywords(photo) == ["BIB:120"]
    for name, number in (("photo0.png", "110"), ("photo1.jpg", "120")):
        assert main(["correct", str(photos / name), "--index", str(index), "--remove", number]) == 0
    capsys.readouterr()
    assert main(["write-metadata", "--index", str(index), "--mode", "sidecar"]) == 0
    assert "2 keywords of numbers no longer shown taken out of 2 photos" in capsys.readouterr().out
    assert xmp_subjects((photos / "photo0.xmp").read_bytes()) == [] and iptc_keywords(photo) == []
    assert not (photos / "photo1.xmp").exists()  # nothing to write there


@pytest.mark.parametrize("mode", ["keywords", "sidecar"])
def test_a_photo_changed_or_gone_since_tagging_gets_no_keywords_and_is_read_again(tmp_path, capsys, mode):
    photos, index = tmp_path / "photos", tmp_path / "race.db"
    photos.mkdir()
    for k in range(3):
        cv2.imwrite(str(photos / f"photo{k}.jpg"), np.full((24, 32, 3), 10 * k + 10, np.uint8))  # 110, 120, 130
    tag_folder(photos, index, ShadeTagger, version="v1", workers=1)
    cv2.imwrite(str(photos / "photo0.jpg"), np.full((24, 32, 3), 90, np.uint8))  # another photo now: 190
    (photos / "photo1.jpg").unlink()
    assert main(["write-metadata", "--index", str(index), "--mode", mode]) == 1
    out = capsys.readouterr()
    assert "1 of 3 photos with numbers gained 1 keyword," in out.out and "2 failed" in out.out
    assert "photo0.jpg: changed since it was tagged: run `jerseynum tag` first" in out.err
    assert "photo1.jpg: gone since it was tagged" in out.err
    assert not (photos / "photo1.jpg").exists() and not (photos / "photo1.xmp").exists()
    assert iptc_keywords(photos / "photo0.jpg") == [] and not (photos / "photo0.xmp").exists()
    report = tag_folder(photos, index, ShadeTagger, version="v1", workers=1)
    assert (report.tagged, report.removed) == (1, 1)  # the changed photo is read again


def test_real_race_photos_get_their_bibs_as_keywords_and_sidecars(tmp_path):
    from tests.conftest import data_set

    root = data_set("rbnr_bib_photos")
    for mode in ("keywords", "sidecar"):
        folder = tmp_path / mode
        folder.mkdir()
        for name in ("set1_11.JPG", "set1_12.JPG"):
            shutil.copy(root / "images" / name, folder / name)
            (folder / name).chmod(0o644)
        pixels = {p.name: image_data(p) for p in folder.iterdir()}
        files = {p.name: p.read_bytes() for p in folder.iterdir()}
        argv = ["tag", str(folder), "--index", str(tmp_path / f"{mode}.db"), "--workers", "1", "-q"]
        assert main([*argv, "--write-metadata", mode]) == 0
        for name, compressed in pixels.items():
            photo = folder / name
            out = subprocess.run(["exiftool", "-s3", "-XMP-dc:Subject",
                                  str(photo if mode == "keywords" else sidecar_path(photo))],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            assert "BIB:2605" in out  # the runner in both photos
            assert image_data(photo) == compressed
            assert mode == "keywords" or photo.read_bytes() == files[name]
        written = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert main([*argv, "--write-metadata", mode]) == 0  # a rerun: nothing read, nothing written
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == written
