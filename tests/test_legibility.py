"""The legibility classifier: pseudo-label rules, training material, a tiny training run, ONNX parity."""

import cv2
import numpy as np
import pytest

from jerseynum.stages.legibility import (
    DEFAULT_WEIGHTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LegibilityClassifier,
    export_onnx,
    load_checkpoint,
    to_batch,
)
from jerseynum.training.synth import render_jersey_crop, render_negative_crop
from jerseynum.training.train_legibility import (
    Crop,
    LabelRule,
    ReadingCache,
    Readings,
    bib_free_regions,
    folder_crops,
    read_crops,
    train,
)
from jerseynum.types import Mode


def test_label_rule_keeps_confident_numbers_and_empty_reads_and_leaves_out_the_rest():
    rule = LabelRule(legible_min=0.5, illegible_max=0.1, agreement=False)
    assert rule.label(Readings("23", 0.9, "23", 0.9), Mode.JERSEY) is True
    assert rule.label(Readings("", 0.0, "", 0.0), Mode.JERSEY) is False
    assert rule.label(Readings("7", 0.05, "", 0.0), Mode.JERSEY) is False  # a faint guess is no reading
    assert rule.label(Readings("23", 0.3, "23", 0.9), Mode.JERSEY) is None  # unsure: left out
    assert rule.label(Readings("123", 0.9, "", 0.0), Mode.JERSEY) is None  # no jersey number
    assert rule.label(Readings("123", 0.9, "", 0.0), Mode.BIB) is True
    strict = LabelRule(agreement=True)
    assert strict.label(Readings("23", 0.9, "28", 0.9), Mode.JERSEY) is None  # our text stage disagrees
    assert strict.label(Readings("", 0.0, "4", 0.8), Mode.JERSEY) is None  # our text stage reads a number


def test_bib_free_regions_stay_clear_of_every_bib_and_repeat_per_photo():
    photo = np.zeros((400, 600, 3), np.uint8)
    bibs = [[100, 100, 200, 160], [400, 250, 520, 330]]
    regions = bib_free_regions(photo, bibs, 40, "photo.jpg")
    assert len(regions) > 20 and regions == bib_free_regions(photo, bibs, 40, "photo.jpg")
    for x1, y1, x2, y2 in regions:
        assert 0 <= x1 < x2 <= 600 and 0 <= y1 < y2 <= 400
        for a, b, c, d in bibs:
            assert x2 <= a or x1 >= c or y2 <= b or y1 >= d


def test_reading_cache_resumes_and_rereads_a_row_cut_short(tmp_path):
    path = tmp_path / "readings.csv"
    ReadingCache(path).add({"a.jpg": Readings("12", 0.9, "12", 0.8), "b.jpg#1,2,3,4": Readings("", 0.0, "", 0.0)})
    with path.open("a") as file:
        file.write('"c.jpg",7,0.')  # an interrupt in the middle of a row
    cache = ReadingCache(path)
    assert set(cache.rows) == {"a.jpg", "b.jpg#1,2,3,4"}
    assert cache.rows["a.jpg"] == Readings("12", 0.9, "12", 0.8)


def test_easyocr_pseudo_labels_a_clear_number_legible_and_a_plain_shirt_illegible(tmp_path):
    number = np.full((60, 80, 3), 255, np.uint8)
    cv2.putText(number, "47", (8, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 4)
    shirt = np.full((60, 80, 3), (40, 40, 200), np.uint8)
    crops = [Crop("number", "g", number), Crop("shirt", "g", shirt)]
    readings = read_crops(crops, ReadingCache(tmp_path / "readings.csv"), Mode.JERSEY)
    assert [LabelRule().label(r, Mode.JERSEY) for r in readings] == [True, False]
    assert readings[0].easyocr_text == "47" and readings[0].ours_text == "47"
    assert len(ReadingCache(tmp_path / "readings.csv").rows) == 2  # cached: a rerun reads nothing


def _rendered_crops(count: int, seed: int) -> tuple[list[Crop], list[Readings]]:
    rng = np.random.default_rng(seed)
    crops, readings = [], []
    for i in range(count):
        legible = i % 2 == 0
        image = render_jersey_crop(str(i % 90 + 10), rng) if legible else render_negative_crop(rng)
        crops.append(Crop(f"crop{i}", f"group{i % 20}", image, legible))
        readings.append(Readings(str(i % 90 + 10), 0.9, str(i % 90 + 10), 0.9) if legible else Readings("", 0.0, "", 0.0))
    return crops, readings


def test_training_lowers_the_loss_and_the_saved_weights_load_back_in_torch_and_onnx(tmp_path):
    crops, readings = _rendered_crops(192, seed=0)
    out = tmp_path / "legibility.pt"
    report = train(crops, out, tmp_path, arch="resnet_nano", rounds=2, epochs=3, batch_size=32, learning_rate=3e-3,
                   patience=3, progress=False, readings=readings)  # fmt: skip
    losses = [epoch["loss"] for epoch in report["rounds"][0]["history"]]
    assert losses[-1] < losses[0]
    assert len(report["rounds"]) == 2 and out.with_suffix(".round1.pt").is_file()
    _, input_size, meta = load_checkpoint(out)
    assert input_size == (64, 64) and meta["rounds"][1]["round"] == 2
    probe = [render_jersey_crop("58", np.random.default_rng(9)), render_negative_crop(np.random.default_rng(9))]
    torch_scores = LegibilityClassifier(out).score(probe)
    export_onnx(out, tmp_path / "legibility.onnx")
    onnx_scores = LegibilityClassifier(tmp_path / "legibility.onnx").score(probe)
    assert torch_scores.shape == (2,) and np.allclose(torch_scores, onnx_scores, atol=1e-4)


def test_folder_crops_reads_every_image_and_reports_a_missing_folder(tmp_path):
    (tmp_path / "t1").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "t1" / f"{i}.jpg"), np.full((40, 30, 3), 100 + i, np.uint8))
    (tmp_path / "t1" / "broken.jpg").write_bytes(b"not a jpeg")
    for i in range(2):  # crops straight in a given folder: each is its own group
        cv2.imwrite(str(tmp_path / f"loose{i}.jpg"), np.full((40, 30, 3), 50 + i, np.uint8))
    crops = folder_crops([tmp_path], progress=False)
    assert len(crops) == 5
    assert sorted(c.group for c in crops) == [str(tmp_path / "loose0.jpg"), str(tmp_path / "loose1.jpg"),
                                              *[str(tmp_path / "t1")] * 3]  # a tracklet's frames: one group
    with pytest.raises(FileNotFoundError, match="not a folder"):
        folder_crops([tmp_path / "absent"])


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped legibility weights")
def test_shipped_classifier_tells_a_clear_number_from_a_plain_shirt():
    number = np.full((40, 40, 3), (30, 30, 180), np.uint8)
    cv2.putText(number, "8", (8, 33), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 3)
    shirt = np.full((40, 40, 3), (30, 30, 180), np.uint8)
    legible, plain = LegibilityClassifier(DEFAULT_WEIGHTS).score([number, shirt])
    assert legible > 0.5 > plain


def test_batches_are_resized_rgb_and_imagenet_normalised():
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(20, 18), (90, 70), (64, 64)]]
    batch = to_batch(crops, (64, 64))
    assert batch.shape == (3, 3, 64, 64) and batch.dtype == np.float32 and batch.flags["C_CONTIGUOUS"]
    expected = cv2.resize(crops[2], (64, 64))[:, :, ::-1] / 255.0  # BGR -> RGB
    expected = ((expected - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    np.testing.assert_allclose(batch[2], expected, atol=1e-5)


def test_known_crops_are_labelled_by_their_truth_and_never_pseudo_labelled(tmp_path, monkeypatch):
    """Degraded copies and rendered words train as illegible beside pseudo-labelled crops; the pseudo-labeller
    reads only the pseudo-labelled ones, and self-training never relabels a known crop."""
    from jerseynum.training.known_legibility import degraded_copies, letter_crops

    crops, readings = _rendered_crops(96, seed=1)
    known = degraded_copies(crops, 24) + letter_crops(24)
    assert all(c.known and c.truth is False for c in known) and len({c.key for c in known}) == 48
    legible = {c.key: c.image for c in crops}
    for copy in known[:24]:
        original = legible[copy.key.rsplit("#", 1)[0]]
        assert copy.image.shape == original.shape and not np.array_equal(copy.image, original)
    read = []

    def reader(pseudo, cache, mode, progress):  # stands in for EasyOCR: records what it was asked to read
        read.extend(c.key for c in pseudo)
        return readings

    monkeypatch.setattr("jerseynum.training.train_legibility.read_crops", reader)
    report = train(crops + known, tmp_path / "l.pt", tmp_path, rounds=2, epochs=1, batch_size=32, progress=False)
    assert read == [c.key for c in crops]  # known crops were not read
    first, second = (summary["labels"]["illegible"] for summary in report["rounds"])
    assert first == 48 + sum(not c.truth for c in crops)
    assert second >= 48  # self-training may drop pseudo-labels it disagrees with, never a known label


def test_unknown_known_material_is_a_clear_error(tmp_path):
    from jerseynum.training.known_legibility import known_crops

    with pytest.raises(ValueError, match="unknown legibility material"):
        known_crops(tmp_path, ("degraded", "sponsors"), [])


def test_costly_known_material_is_built_once_per_work_folder(tmp_path, monkeypatch):
    from jerseynum.training import known_legibility

    built = []

    def runner_torsos(data, progress):
        built.append(data)
        return [Crop("runner:a", "photo", np.zeros((8, 8, 3), np.uint8), True, known=True)]

    monkeypatch.setattr(known_legibility, "runner_torsos", runner_torsos)
    first = known_legibility.known_crops(tmp_path, ("runners",), [], work=tmp_path / "work")
    again = known_legibility.known_crops(tmp_path, ("runners",), [], work=tmp_path / "work")
    assert len(built) == 1 and [c.key for c in again] == [c.key for c in first] == ["runner:a"]
    assert again[0].known and again[0].truth is True


def test_too_few_labels_or_no_validation_part_say_which(tmp_path):
    from jerseynum.training import splits

    image = np.zeros((32, 32, 3), np.uint8)
    outside = [f"t{i}" for i in range(100) if not splits.validation_group(f"t{i}", 0.1)][:4]
    one_class = [Crop(f"k{i}", group, image, True, known=True) for i, group in enumerate(outside)]
    with pytest.raises(ValueError, match="too little to train on: both legible and illegible crops are needed"):
        train(one_class, tmp_path / "l.pt", tmp_path, readings=[], progress=False)
    both = one_class[:2] + [Crop(f"n{i}", group, image, False, known=True) for i, group in enumerate(outside[2:])]
    with pytest.raises(ValueError, match="no labelled crop falls in the validation part .* of the 4 groups"):
        train(both, tmp_path / "l.pt", tmp_path, readings=[], progress=False)
    assert not (tmp_path / "l.pt").exists()
