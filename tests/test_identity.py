"""Runner identity: clothing colour, photo time, the distance rule, clustering, ranking, and dlib's face embedder,
all on images and vectors the tests make themselves."""

from __future__ import annotations

import importlib.util
import io
import sys
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from jerseynum.photos import identity
from jerseynum.photos.identity import (
    COLOUR_BINS,
    UNSEEN_COLOUR,
    IdentitySettings,
    Signature,
    clothing_colour,
    cluster,
    distance,
    photo_time,
    rank_matches,
)
from jerseynum.types import Box

REPO = Path(__file__).resolve().parents[1]

RED, BLUE, WHITE = (40, 40, 200), (200, 60, 30), (235, 235, 235)  # BGR


def draw_runner(
    photo: np.ndarray,
    x: int,
    y: int,
    size: int,
    shirt: tuple[int, int, int],
    *,
    eyes: float = 0.35,
    mouth: float = 0.25,
    skin: tuple[int, int, int] = (150, 180, 220),
    hair: tuple[int, int, int] = (40, 40, 40),
) -> Box:
    """A cartoon runner: a face of `size` px centred at (x, y) above a shirt; returns the face box."""
    s = size
    cv2.rectangle(photo, (int(x - s), int(y + 0.6 * s)), (int(x + s), int(y + 4.5 * s)), shirt, -1)
    cv2.ellipse(photo, (x, y - int(0.35 * s)), (int(0.45 * s), int(0.3 * s)), 0, 180, 360, hair, -1)
    cv2.ellipse(photo, (x, y), (int(0.4 * s), int(0.5 * s)), 0, 0, 360, skin, -1)
    stroke = max(1, int(0.04 * s))
    for side in (-1, 1):
        eye_x = int(x + side * eyes * s)
        cv2.circle(photo, (eye_x, int(y - 0.1 * s)), max(1, int(0.06 * s)), (30, 30, 30), -1)
        cv2.line(
            photo,
            (eye_x - int(0.1 * s), int(y - 0.22 * s)),
            (eye_x + int(0.1 * s), int(y - 0.22 * s)),
            (30, 30, 30),
            stroke,
        )
    cv2.line(photo, (x, int(y - 0.05 * s)), (x, int(y + 0.15 * s)), (100, 120, 160), stroke)
    cv2.ellipse(photo, (x, int(y + 0.28 * s)), (int(mouth * s), int(0.06 * s)), 0, 0, 180, (60, 60, 160), stroke)
    return int(x - 0.5 * s), int(y - 0.6 * s), int(x + 0.5 * s), int(y + 0.6 * s)


def photo_with(background: int = 120, height: int = 480, width: int = 640) -> np.ndarray:
    return np.full((height, width, 3), background, np.uint8)


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(1 - np.minimum(a, b).sum())


def unit(seed: int) -> np.ndarray:
    """A random direction scaled like dlib's descriptors (norm ~1), so that different seeds are ~1.4 apart."""
    vector = np.random.default_rng(seed).normal(size=128)
    return vector / np.linalg.norm(vector)


def near(vector: np.ndarray, seed: int, spread: float = 0.05) -> np.ndarray:
    """The same runner in another photo: the vector moved by about `spread`."""
    noise = np.random.default_rng(1000 + seed).normal(size=128)
    return vector + spread * noise / np.linalg.norm(noise)


UNIFORM = np.full(COLOUR_BINS, 1 / COLOUR_BINS)
SHIRT = np.eye(COLOUR_BINS)[3]  # all of one colour bin
OTHER_SHIRT = np.eye(COLOUR_BINS)[20]


# --- clothing colour ---------------------------------------------------------------------------------------------


def test_clothing_colour_tells_shirts_apart_and_finds_the_same_shirt_in_another_photo():
    first = photo_with(120)
    red_box = draw_runner(first, 160, 120, 60, RED)
    blue_box = draw_runner(first, 460, 120, 60, BLUE)
    second = photo_with(90, 600, 800)  # another photo: darker background, runner elsewhere and larger
    red_again_box = draw_runner(second, 500, 160, 80, RED)
    red, blue = clothing_colour(first, red_box), clothing_colour(first, blue_box)
    red_again = clothing_colour(second, red_again_box)
    for histogram in (red, blue, red_again):
        assert histogram.shape == (COLOUR_BINS,) and histogram.dtype == np.float32
        assert histogram.sum() == pytest.approx(1.0)
    assert colour_distance(red, red_again) < 0.1
    assert colour_distance(red, blue) > 0.9


def test_red_on_both_sides_of_the_hue_circle_is_one_colour_and_greys_have_their_own_bins():
    def shirt(colour: tuple[int, int, int]) -> np.ndarray:
        photo = photo_with()
        return clothing_colour(photo, draw_runner(photo, 320, 100, 60, colour))

    assert colour_distance(shirt((0, 0, 200)), shirt((25, 0, 200))) < 0.1  # OpenCV hues 0 and ~176
    assert colour_distance(shirt((20, 20, 20)), shirt(WHITE)) > 0.9  # black and white shirts
    assert colour_distance(shirt(WHITE), shirt((240, 170, 120))) > 0.9  # white against light blue


@pytest.mark.parametrize("face", [(300, 460, 340, 480), (300, 500, 340, 540), (700, 10, 740, 50)])
def test_an_empty_torso_region_gives_a_uniform_histogram(face):
    histogram = clothing_colour(photo_with(), face)  # at the bottom edge, below the photo, right of it
    assert np.allclose(histogram, 1 / COLOUR_BINS)


def test_a_torso_cut_by_the_photo_edge_is_measured_on_what_is_inside():
    photo = photo_with()
    box = draw_runner(photo, 10, 120, 60, RED)  # half the shirt is left of the photo
    inside = photo_with()
    whole = clothing_colour(inside, draw_runner(inside, 320, 120, 60, RED))
    assert colour_distance(clothing_colour(photo, box), whole) < 0.1


# --- photo time --------------------------------------------------------------------------------------------------


def jpeg_with_exif(taken: str | None, subsec: str | None = None) -> bytes:
    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(identity.EXIF_IFD)[identity.DATE_TIME_ORIGINAL] = taken
    if subsec is not None:
        exif.get_ifd(identity.EXIF_IFD)[identity.SUBSEC_TIME_ORIGINAL] = subsec
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 20, 30)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_photo_time_reads_date_time_original_with_its_fraction():
    expected = datetime(2024, 5, 12, 9, 30, 15, tzinfo=timezone.utc).timestamp()
    assert photo_time(jpeg_with_exif("2024:05:12 09:30:15")) == expected
    later = photo_time(jpeg_with_exif("2024:05:12 09:30:17", "75"))
    assert later - expected == pytest.approx(2.75)


def test_photo_time_is_none_without_a_readable_time():
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    good = jpeg_with_exif("2024:05:12 09:30:15")
    for data in (
        jpeg_with_exif(None),
        jpeg_with_exif("yesterday"),
        jpeg_with_exif("2024:13:45 25:00:00"),
        png.getvalue(),
        b"",
        b"garbage bytes",
        good[:40],
        b"\xff\xd8\xff\xe1" + b"\xff" * 100,
    ):
        assert photo_time(data) is None


# --- the distance rule -------------------------------------------------------------------------------------------

SETTINGS = IdentitySettings()


def test_with_both_faces_the_distance_is_the_face_distance_far_apart_in_time():
    a, b = unit(1), near(unit(1), 1, 0.3)
    # Same clothes, but an hour apart (or a time unknown): colour does not help.
    for time_b in (3600.0, None):
        assert distance(Signature(a, SHIRT, 0.0), Signature(b, SHIRT, time_b)) == pytest.approx(0.3, abs=1e-6)


def test_same_burst_clothes_take_off_up_to_the_bonus_and_disagreeing_clothes_add_nothing():
    a, b = unit(1), near(unit(1), 1, 0.5)
    same_clothes = distance(Signature(a, SHIRT, 0.0), Signature(b, SHIRT, 3.0))
    other_clothes = distance(Signature(a, SHIRT, 0.0), Signature(b, OTHER_SHIRT, 3.0))
    assert same_clothes == pytest.approx(0.5 - SETTINGS.colour_bonus, abs=1e-6)
    assert other_clothes == pytest.approx(0.5, abs=1e-6)
    half = (SHIRT + OTHER_SHIRT) / 2  # colour distance 0.5, over colour_same: no bonus either
    assert distance(Signature(a, SHIRT, 0.0), Signature(b, half, 3.0)) == pytest.approx(0.5, abs=1e-6)
    assert distance(Signature(a, SHIRT, 0.0), Signature(a, SHIRT, 1.0)) == 0.0  # never below 0


def test_without_a_face_only_same_burst_clothes_can_link():
    face = unit(1)
    no_face = Signature(None, SHIRT, 0.0)
    assert distance(no_face, Signature(face, SHIRT, 2.0)) == 0.0
    assert distance(no_face, Signature(None, SHIRT, 2.0)) < SETTINGS.link_distance
    assert distance(no_face, Signature(face, OTHER_SHIRT, 2.0)) == SETTINGS.unrelated  # different clothes
    assert distance(no_face, Signature(face, SHIRT, 60.0)) == SETTINGS.unrelated  # same clothes, later
    assert distance(no_face, Signature(face, SHIRT, None)) == SETTINGS.unrelated  # time unknown
    unseen = Signature(None, UNSEEN_COLOUR, 1.0)  # no clothing seen (an empty torso box): no evidence either
    assert distance(unseen, Signature(None, UNSEEN_COLOUR, 2.0)) == SETTINGS.unrelated
    # Clothes just under colour_same apart link; just over do not.
    for share, links in ((1 - 0.9 * SETTINGS.colour_same, True), (1 - 1.1 * SETTINGS.colour_same, False)):
        colour = share * SHIRT + (1 - share) * OTHER_SHIRT
        assert (distance(no_face, Signature(None, colour, 1.0)) <= SETTINGS.link_distance) is links


def test_distance_is_symmetric():
    signatures = [
        Signature(unit(1), SHIRT, 0.0),
        Signature(None, SHIRT, 4.0),
        Signature(near(unit(1), 2), UNIFORM),
        Signature(unit(3), OTHER_SHIRT, 5.0),
    ]
    for a in signatures:
        for b in signatures:
            assert distance(a, b) == pytest.approx(distance(b, a), abs=1e-9)


def test_signature_stores_float32_arrays():
    signature = Signature([0.5] * 128, [1 / COLOUR_BINS] * COLOUR_BINS, 1.0)
    assert signature.face.dtype == np.float32 and signature.colour.dtype == np.float32
    assert Signature(None, UNIFORM).time is None


# --- clustering and ranking --------------------------------------------------------------------------------------


def three_runners_in_three_photos() -> tuple[list[Signature], list[int], list[int]]:
    """Runners 0, 1, 2 each in photos 0, 1, 2 (a minute apart), listed photo by photo."""
    signatures, photos, runners = [], [], []
    for photo in range(3):
        for runner in range(3):
            face = near(unit(runner), 10 * runner + photo, 0.15)
            signatures.append(Signature(face, np.eye(COLOUR_BINS)[runner], 60.0 * photo))
            photos.append(photo)
            runners.append(runner)
    return signatures, photos, runners


def test_three_runners_in_three_photos_are_three_clusters():
    signatures, photos, runners = three_runners_in_three_photos()
    assert cluster(signatures, photo_ids=photos) == runners
    assert cluster(signatures) == runners


def test_cluster_labels_are_deterministic_and_numbered_by_first_appearance():
    signatures, photos, runners = three_runners_in_three_photos()
    order = [8, 3, 5, 0, 7, 1, 4, 2, 6]
    shuffled = [signatures[k] for k in order]
    labels = cluster(shuffled, photo_ids=[photos[k] for k in order])
    assert labels == cluster(shuffled, photo_ids=[photos[k] for k in order])
    assert labels[0] == 0 and sorted(set(labels)) == [0, 1, 2]
    first: dict[int, int] = {}
    assert labels == [first.setdefault(runners[k], len(first)) for k in order]


def test_two_runners_of_one_photo_are_never_one_cluster():
    twin = unit(7)
    signatures = [Signature(twin, SHIRT, 0.0), Signature(near(twin, 1, 0.02), SHIRT, 0.0)]
    assert cluster(signatures) == [0, 0]  # indistinguishable...
    assert cluster(signatures, photo_ids=[5, 5]) == [0, 1]  # ...but in one photo, so two people


def test_cannot_link_holds_among_many_look_alikes():
    # 40 runners, 10 photos, faces all within link distance of one another: only the photos keep them apart.
    base = unit(3)
    signatures = [Signature(near(base, k, 0.15), SHIRT, float(k)) for k in range(40)]
    photos = [k % 10 for k in range(40)]
    labels = cluster(signatures, photo_ids=photos)
    for label in set(labels):
        members = [photos[k] for k in range(40) if labels[k] == label]
        assert len(members) == len(set(members))
    assert len(set(labels)) >= 4  # at most 10 runners per cluster, one per photo


def test_a_runner_without_a_face_joins_their_burst_by_clothes():
    face = unit(1)
    signatures = [
        Signature(face, SHIRT, 0.0),
        Signature(near(face, 1), SHIRT, 2.0),
        Signature(None, SHIRT, 4.0),  # the same runner further back in the burst: face too small
        Signature(None, SHIRT, 600.0),  # same shirt ten minutes later, no face: nothing links it
        Signature(unit(2), OTHER_SHIRT, 4.0),
    ]
    assert cluster(signatures, photo_ids=[0, 1, 2, 3, 2]) == [0, 0, 0, 1, 2]


def test_cluster_edge_cases():
    assert cluster([]) == []
    assert cluster([Signature(None, UNIFORM)]) == [0]
    assert cluster([Signature(None, UNIFORM), Signature(None, UNIFORM)]) == [0, 1]  # no time: no evidence
    with pytest.raises(ValueError, match="photo ids"):
        cluster([Signature(None, UNIFORM)] * 2, photo_ids=[1])


def test_rank_matches_puts_the_same_runner_first():
    query = Signature(unit(1), SHIRT, 0.0)
    gallery = [
        Signature(unit(2), SHIRT, 1.0),
        Signature(near(unit(1), 1, 0.3), OTHER_SHIRT, 500.0),
        Signature(near(unit(1), 2, 0.1), SHIRT, 2.0),
        Signature(None, SHIRT, 900.0),
        Signature(unit(3), OTHER_SHIRT, None),
    ]
    ranked = rank_matches(query, gallery)
    assert ranked[:2] == [2, 1] and sorted(ranked) == [0, 1, 2, 3, 4]
    assert rank_matches(query, []) == []
    ties = [Signature(None, UNIFORM)] * 3
    assert rank_matches(query, ties) == [0, 1, 2]  # equal distances keep the gallery's order


# --- dlib's face embedder ----------------------------------------------------------------------------------------


def test_a_missing_dlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # what `import dlib` sees where it is not installed
    with pytest.raises(ImportError, match="dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"):
        identity.FaceEmbedder()


def test_missing_face_models_say_what_to_install(monkeypatch):
    pytest.importorskip("dlib")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "face_recognition_models" else real(name, *a)
    )
    with pytest.raises(ImportError, match="face-recognition-models==0.3.0"):
        identity.FaceEmbedder()


@pytest.fixture(scope="module")
def embedder() -> identity.FaceEmbedder:
    pytest.importorskip("dlib")
    return identity.FaceEmbedder()


def test_only_the_five_point_landmark_model_is_loaded(monkeypatch):
    dlib = pytest.importorskip("dlib")
    loaded = []
    real = dlib.shape_predictor
    monkeypatch.setattr(dlib, "shape_predictor", lambda path: loaded.append(path) or real(path))
    identity.FaceEmbedder()
    assert len(loaded) == 1 and loaded[0].endswith("shape_predictor_5_face_landmarks.dat")


def test_the_onnx_network_gives_dlibs_own_descriptor(embedder):
    # The network runs under ONNX Runtime, rebuilt from dlib's weights (scripts/build_face_embedder.py): the same
    # face must give dlib's own compute_face_descriptor, to float precision.
    dlib = pytest.importorskip("dlib")
    photo = photo_with()
    box = draw_runner(photo, 320, 150, 100, RED)
    folder = identity.face_models_folder()
    landmarks = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
    network = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))
    rgb = np.ascontiguousarray(photo[..., ::-1])
    expected = np.asarray(network.compute_face_descriptor(rgb, landmarks(rgb, dlib.rectangle(*box))), np.float32)
    assert np.abs(embedder.embed(photo, box) - expected).max() < 1e-5


def test_a_face_network_not_built_names_its_build_script(tmp_path):
    pytest.importorskip("dlib")
    with pytest.raises(identity.FaceEmbedderMissing, match="scripts/build_face_embedder.py"):
        identity.FaceEmbedder(weights=tmp_path / "missing.onnx")


def test_embedding_shape_type_and_determinism(embedder):
    photo = photo_with()
    box = draw_runner(photo, 320, 150, 100, RED)
    first = embedder.embed(photo, box)
    assert first.shape == (128,) and first.dtype == np.float32 and np.isfinite(first).all()
    assert np.array_equal(first, embedder.embed(photo.copy(), box))
    # Only the pixels around the face count: the same face elsewhere on a larger photo gives the same vector.
    larger = photo_with(height=900, width=1200)
    larger[300:780, 400:1040] = photo
    x1, y1, x2, y2 = box
    assert np.allclose(first, embedder.embed(larger, (x1 + 400, y1 + 300, x2 + 400, y2 + 300)), atol=1e-5)


def test_a_tiny_face_has_no_embedding(embedder):
    photo = photo_with()
    box = draw_runner(photo, 320, 150, 15, RED)
    assert embedder.embed(photo, box) is None
    assert embedder.embed(photo, (300, 100, 360, 118)) is None  # wide but only 18 px high


def test_the_same_rendered_face_is_nearer_than_a_different_one(embedder):
    # Measured: the same cartoon shifted and rescaled by up to 8 % is 0.06-0.24 away, other cartoons 0.41-0.51.
    def shot(dx: int = 0, scale: float = 1.0, **face) -> np.ndarray:
        photo = photo_with()
        return embedder.embed(photo, draw_runner(photo, 320 + dx, 150, int(100 * scale), RED, **face))

    other = {"eyes": 0.2, "mouth": 0.12, "skin": (90, 120, 170)}
    third = {"eyes": 0.28, "mouth": 0.35, "skin": (200, 210, 240), "hair": (20, 60, 120)}
    a = [shot(), shot(dx=17, scale=1.08), shot(dx=-23, scale=0.93)]
    b = [shot(**other), shot(dx=11, scale=1.05, **other)]
    c = shot(**third)
    same = [np.linalg.norm(a[0] - a[1]), np.linalg.norm(a[0] - a[2]), np.linalg.norm(b[0] - b[1])]
    different = [np.linalg.norm(x - y) for x in a for y in [*b, c]] + [np.linalg.norm(y - c) for y in b]
    assert max(same) + 0.1 < min(different)
    gallery = [Signature(f, UNIFORM) for f in (b[0], a[1], c, a[2], b[1])]
    assert sorted(rank_matches(Signature(a[0], UNIFORM), gallery)[:2]) == [1, 3]


def test_the_face_network_builder_reads_dlibs_file_whole_or_not_at_all():
    # scripts/build_face_embedder.py parses dlib's serialization itself: a file it does not read to the last
    # byte, or that ends early, is not dlib's network and must stop the build.
    pytest.importorskip("dlib")
    spec = importlib.util.spec_from_file_location("build_face_embedder", REPO / "scripts" / "build_face_embedder.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    data = builder.model_file().read_bytes()
    layers, means = builder.parse(data)
    assert [spec[0] for spec, _ in layers].count("con") == 29 and len(means) == 3
    for damaged in (data[:-1], data + b"\0", data[: len(data) // 2]):
        with pytest.raises(builder.FormatError):
            builder.parse(damaged)
