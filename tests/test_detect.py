"""The person detector (jerseynum.detect): nobody in a rendered scene without people, the runner of a real race
photo, batches and tiles in the image's pixels, and the merging of what tiles find."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from jerseynum.detect import person_detector
from jerseynum.detect.ssdlite import DetectorMissing, non_maximum_suppression, tile_grid
from jerseynum.types import PersonBox
from jerseynum.weights import PERSON_DETECTOR
from tests.conftest import data_set

built = pytest.mark.skipif(not PERSON_DETECTOR.is_file(), reason=f"{PERSON_DETECTOR} is not built: run"
                           " bash scripts/build_detector.sh (scripts/install.sh does)")  # fmt: skip


def rendered_scene(seed: int = 0) -> np.ndarray:
    """A 640x360 frame of grass, lines, a banner with text and a goal: everything of a pitch but people."""
    rng = np.random.default_rng(seed)
    scene = np.full((360, 640, 3), (40, 120, 40), np.uint8)
    scene = cv2.add(scene, rng.integers(0, 30, scene.shape, dtype=np.uint8))
    cv2.line(scene, (0, 250), (640, 230), (235, 235, 235), 4)
    cv2.circle(scene, (320, 240), 60, (235, 235, 235), 3)
    cv2.rectangle(scene, (20, 20), (620, 80), (200, 30, 30), -1)
    cv2.putText(scene, "SPONSOR 2024", (60, 68), cv2.FONT_HERSHEY_DUPLEX, 1.6, (255, 255, 255), 3)
    cv2.rectangle(scene, (500, 150), (600, 230), (250, 250, 250), 5)
    return scene


@built
def test_nobody_is_found_in_a_rendered_scene_without_people():
    detector = person_detector()
    assert detector.detect([rendered_scene(0), rendered_scene(1)]) == [[], []]
    assert person_detector(tiles=2).detect([rendered_scene(2)]) == [[]]


@built
def test_the_runner_of_a_real_race_photo_is_found_whole_alone_in_a_batch_and_with_tiles():
    image = cv2.imread(str(data_set("rbnr_bib_photos") / "images" / "set1_04.JPG"))
    bib_centre = (164, 252)  # labels_with_boxes.json: runner 3719's bib
    whole = person_detector().detect([image])[0]
    assert len(whole) == 1 and whole[0].score > 0.9
    x1, y1, x2, y2 = whole[0].box
    assert x1 < bib_centre[0] < x2 and y1 < bib_centre[1] < y2 and (y2 - y1) > 0.5 * image.shape[0]
    flipped = cv2.flip(image, 1)
    batch = person_detector().detect([image, flipped])
    assert batch[0] == whole and len(batch[1]) == 1
    fx1, _, fx2, _ = batch[1][0].box  # the mirrored photo's runner is mirrored, in that image's pixels
    near = 0.05 * image.shape[1]  # the network is not exactly mirror-symmetric
    assert abs((image.shape[1] - fx2) - x1) <= near and abs((image.shape[1] - fx1) - x2) <= near
    tiled = person_detector(tiles=2).detect([image])[0]
    assert tiled[0] == whole[0]  # the whole photo's runner, not a tile's cut of it


def test_tiles_cover_the_image_and_overlap():
    for width, height, n in ((850, 573, 2), (1280, 720, 3), (640, 360, 2)):
        tiles = tile_grid(width, height, n)
        assert len(tiles) == n * n
        assert min(t[0] for t in tiles) == 0 and max(t[2] for t in tiles) == width
        assert min(t[1] for t in tiles) == 0 and max(t[3] for t in tiles) == height
        first, second = tiles[0], tiles[1]
        assert second[0] < first[2]  # neighbours overlap


def test_overlapping_and_contained_boxes_merge_into_the_most_confident():
    whole = PersonBox((100, 100, 200, 400), 0.99)
    cut = PersonBox((100, 100, 190, 250), 0.8)  # a tile's cut of the same person
    twin = PersonBox((105, 98, 205, 395), 0.7)
    neighbour = PersonBox((190, 110, 290, 410), 0.9)  # beside, overlapping a little
    assert non_maximum_suppression([cut, twin, whole, neighbour], 0.5) == [whole, neighbour]


def test_a_missing_model_file_says_how_to_build_it(tmp_path):
    with pytest.raises(DetectorMissing, match="build_detector.sh"):
        person_detector(weights=tmp_path / "none.onnx")
    with pytest.raises(ValueError, match="unknown person detector"):
        person_detector("yolo")
