import socket
from dataclasses import replace

import cv2
import numpy as np
import pytest

from jerseynum.config import PipelineConfig
from jerseynum.stages import text
from jerseynum.stages.text import (
    EasyOCRText,
    RapidOCRDetector,
    TextLine,
    TextStage,
    best_reading,
    text_recognizer,
    with_edge_digits,
    without_dropped_digits,
)
from jerseynum.stages.vote import VoteSettings
from jerseynum.training.synth import render_number
from jerseynum.types import Mode, Reading


@pytest.mark.parametrize("number", ["7", "23", "58"])
def test_reads_rendered_jersey_numbers(jersey_text, number):
    reading = jersey_text.recognize([render_number(number, 40)])[0]
    assert reading.text == number
    assert len(reading.char_confidences) == len(number) and reading.confidence > 0.8


def test_tiny_crops_are_read_too(jersey_text):
    crop = cv2.resize(render_number("14", 64), None, fx=0.33, fy=0.33, interpolation=cv2.INTER_AREA)
    assert crop.shape[0] < 30
    assert jersey_text.recognize([crop])[0].text == "14"


def test_recognize_keeps_the_order_of_a_batch(jersey_text):
    numbers = [str(n) for n in range(10, 80, 7)]
    readings = jersey_text.recognize([render_number(n, 40) for n in numbers], batch_size=3)
    assert all(r.engine == jersey_text.name for r in readings)
    assert [r.text for r in readings] == numbers


def test_bib_mode_drops_a_letter_prefix_instead_of_forcing_it_into_a_digit(bib_text):
    patch = render_number("T2182", 48, shirt=(255, 255, 255), ink=(20, 20, 20))
    assert bib_text.recognize([patch])[0].text == "2182"


def test_regions_are_searched_for_the_bib_among_other_text(bib_stage):
    page = np.full((260, 220, 3), (90, 90, 90), np.uint8)
    bib = render_number("4071", 56, shirt=(255, 255, 255), ink=(0, 0, 0))
    page[130 : 130 + bib.shape[0], 20 : 20 + bib.shape[1]] = bib
    cv2.putText(page, "RUN 10K", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    readings = bib_stage.read_regions([page])[0]
    assert [r.engine for r in readings] == [engine.name for engine in bib_stage.engines]  # one number each
    for reading in readings:
        assert reading.text == "4071"
        _, y1, _, y2 = reading.box
        assert 100 < (y1 + y2) / 2 < 200  # the box is where the bib was drawn


def test_a_line_touching_the_crops_side_is_marked_at_side(bib_stage):
    page = np.full((260, 300, 3), (90, 90, 90), np.uint8)
    bib = render_number("4071", 56, shirt=(255, 255, 255), ink=(0, 0, 0))
    page[100 : 100 + bib.shape[0], 80 : 80 + bib.shape[1]] = bib
    inside = bib_stage.read_regions([page])[0]
    cut = bib_stage.read_regions([page[:, 80 + bib.shape[1] // 2 :]])[0]  # the crop ends in the bib's middle
    assert inside and all(r.text == "4071" and not r.at_side for r in inside)
    assert cut and all(r.at_side for r in cut)


def test_every_engine_reads_every_line():
    stage = TextStage(["rapidocr", "crnn"], Mode.JERSEY)
    blank = np.full((30, 30, 3), 128, np.uint8)
    number, nothing = stage.read_lines([render_number("58", 40), blank])
    assert [(r.engine, r.text) for r in number] == [("rapidocr", "58"), ("crnn", "58")]
    assert all(r.confidence < VoteSettings().min_confidence for r in nothing)  # nothing the vote would count
    with pytest.raises(ValueError, match="at least one engine"):
        TextStage([], Mode.JERSEY)


def test_a_reading_inside_another_engines_longer_number_is_a_dropped_digit():
    crnn, rapid = Reading("27", 0.9, (0.9, 0.9), "crnn"), Reading("2", 0.99, (0.99,), "rapidocr")
    assert without_dropped_digits([crnn, rapid]) == [crnn]  # the surer 2 would have won the vote
    agreeing = [crnn, Reading("27", 0.99, (0.99, 0.99), "rapidocr")]
    assert without_dropped_digits(agreeing) == agreeing
    apart = [Reading("15", 0.9, (0.9, 0.9), "crnn"), Reading("7", 0.99, (0.99,), "rapidocr")]
    assert without_dropped_digits(apart) == apart  # not a piece of it: the vote decides


class FixedEngine:
    """A text engine that reads every crop as the same string."""

    def __init__(self, name: str, text: str, confidence: float) -> None:
        self.name, self.text, self.confidence = name, text, confidence

    def recognize(self, crops):
        return [Reading(self.text, self.confidence, (self.confidence,) * len(self.text), self.name) for _ in crops]


@pytest.mark.parametrize("mode, kept", [(Mode.JERSEY, ["27"]), (Mode.BIB, ["27", "2"])])
def test_jersey_mode_keeps_the_longer_of_two_engines_readings_that_contain_one_another(mode, kept):
    stage = TextStage(["crnn"], mode, settle=None)
    stage.engines = [FixedEngine("crnn", "27", 0.9), FixedEngine("rapidocr", "2", 0.99)]
    assert [r.text for r in stage.read_lines([np.zeros((30, 30, 3), np.uint8)])[0]] == kept


def test_best_reading_prefers_large_confident_numbers_in_range():
    small = Reading("12", 0.99, (0.99, 0.99), "t", (0, 0, 20, 10))
    large = Reading("34", 0.9, (0.9, 0.9), "t", (0, 20, 60, 60))
    out_of_range = Reading("345", 0.99, (0.99,) * 3, "t", (0, 0, 90, 90))
    assert best_reading([small, large, out_of_range], Mode.JERSEY) is large
    assert best_reading([Reading("", 0.0, (), "t")], Mode.JERSEY) is None


def test_best_reading_prefers_the_line_at_the_centre_of_the_crop_over_a_neighbours_at_its_edge():
    # A 200-px-wide runner region: its own bib in the middle, a neighbour's slightly larger one cut at the edge.
    own = Reading("20927", 0.95, (0.95,) * 5, "t", (70, 100, 130, 130))
    neighbour = Reading("474", 0.97, (0.97,) * 3, "t", (160, 95, 200, 130))
    assert best_reading([own, neighbour], Mode.BIB) is neighbour  # without the width, the taller line wins
    assert best_reading([own, neighbour], Mode.BIB, crop_width=200) is own


def test_easyocr_loads_and_reads_with_the_network_blocked(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("jerseynum tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    reader = EasyOCRText(Mode.JERSEY)
    reading = reader.recognize([render_number("36", 48, shirt=(255, 255, 255), ink=(0, 0, 0))])[0]
    assert reading.text == "36" and reading.engine == "easyocr"


def test_regions_without_a_sure_number_are_searched_again_at_each_retry_scale():
    stage = TextStage(["rapidocr"], Mode.BIB, retry_sides=(480, 800), retry_model="ppocr-v4-mobile")
    searched = []
    read_at = stage._read_regions_at
    stage._read_regions_at = lambda crops, model, side: (searched.append((model, side, len(crops)))
                                                         or read_at(crops, model, side))  # fmt: skip
    page = np.full((260, 220, 3), (90, 90, 90), np.uint8)
    page[130:186, 20:200] = cv2.resize(render_number("4071", 56, shirt=(255, 255, 255), ink=(0, 0, 0)), (180, 56))
    blank = np.full((260, 220, 3), (90, 90, 90), np.uint8)
    bib, nothing = stage.read_regions([page, blank])
    # only the blank page is searched again, by the retries' detector
    assert searched == [("ppocr-v6-small", 640, 2), ("ppocr-v4-mobile", 480, 1), ("ppocr-v4-mobile", 800, 1)]
    assert [r.text for r in bib] == ["4071"] and nothing == []



def _read(text: str, *confidences: float) -> Reading:
    return Reading(text, float(np.mean(confidences)) if confidences else 0.0, confidences, "rapidocr")


def test_a_wider_cut_of_a_line_adds_a_surely_read_digit_at_an_end_and_nothing_else():
    line = _read("1517", 0.99, 0.99, 0.98, 0.99)
    assert with_edge_digits(line, _read("71517", 0.95, 0.99, 0.99, 0.98, 0.99)).text == "71517"
    assert with_edge_digits(_read("119", 1, 1, 1), _read("11191", 0.93, 1, 1, 1, 0.97)).text == "11191"  # both ends
    assert with_edge_digits(line, _read("71517", 0.6, 0.99, 0.99, 0.98, 0.99)) is line  # the added digit unsure
    assert with_edge_digits(line, _read("771517", 0.99, 0.99, 0.99, 0.99, 0.98, 0.99)) is line  # two at one end
    assert with_edge_digits(line, _read("71577", 0.99, 0.99, 0.99, 0.98, 0.99)) is line  # a digit read otherwise
    assert with_edge_digits(line, _read("1517", 1, 1, 1, 1)) is line
    assert with_edge_digits(_read(""), _read("7", 1)).text == ""  # no number: nothing to complete


def test_the_detector_cuts_each_line_again_with_margins_along_it():
    page = np.full((200, 400, 3), (255, 255, 255), np.uint8)
    page[80:136, 100:300] = cv2.resize(render_number("4071", 56, shirt=(255, 255, 255), ink=(0, 0, 0)), (200, 56))
    detector = RapidOCRDetector(640)
    (tight,) = detector.lines(page)
    (line,) = detector.lines(page, margin=0.5)
    assert tight.wider is None and np.array_equal(line.image, tight.image) and line.box == tight.box
    height, width = tight.image.shape[:2]
    assert line.wider.shape[0] == height and abs(line.wider.shape[1] - (width + height)) <= 2


@pytest.mark.parametrize("piece, whole, read", [("1517", "71517", "71517"),  # a digit the box left out (set2_21)
                                                ("234567", "1234567", "234567")])  # 7 digits are no bib number
def test_bib_mode_takes_the_digit_that_a_line_cut_with_margins_adds(monkeypatch, piece, whole, read):
    whole_line = render_number(whole, 48, shirt=(255, 255, 255), ink=(0, 0, 0))
    piece_line = render_number(piece, 48, shirt=(255, 255, 255), ink=(0, 0, 0))
    page = np.full((200, 300, 3), (40, 60, 150), np.uint8)

    def found(stage: TextStage) -> list[str]:
        detector = RapidOCRDetector(640, model="ppocr-v6-small-int8")
        monkeypatch.setattr(detector, "lines", lambda crop, margin: [
            TextLine(piece_line, (40, 80, 200, 130), whole_line if margin else None)])  # fmt: skip
        stage._detectors[("ppocr-v6-small-int8", 640)] = detector
        return [r.text for r in stage.read_regions([page])[0]]

    assert PipelineConfig(mode="bib").line_margin == 0.5 and PipelineConfig(mode="jersey").line_margin == 0.0
    rapidocr = PipelineConfig(mode="bib", text=("rapidocr",))  # the crnn, reading the line as cut, would hide it
    assert found(TextStage.from_config(rapidocr)) == [read]
    assert found(TextStage.from_config(replace(rapidocr, line_margin=0.0))) == [piece]


@pytest.mark.parametrize("model", ["ppocr-v6-small", "ppocr-v6-small-int8", "ppocr-v4-mobile"])
def test_each_line_detector_finds_a_bib_among_other_print(model):
    page = np.full((300, 240, 3), (150, 60, 40), np.uint8)
    page[40:80, 30:210] = cv2.resize(render_number("2026", 40, shirt=(150, 60, 40), ink=(240, 240, 240)), (180, 40))
    page[150:206, 30:210] = cv2.resize(render_number("4071", 56, shirt=(255, 255, 255), ink=(0, 0, 0)), (180, 56))
    lines = RapidOCRDetector(640, model=model).lines(page)
    centres = sorted(((y1 + y2) / 2, (x1 + x2) / 2) for _, (x1, y1, x2, y2), _ in lines)
    assert len(lines) == 2 and 50 < centres[0][0] < 70 and 168 < centres[1][0] < 188
    assert all(90 < x < 150 for _, x in centres)


@pytest.mark.parametrize("model", ["ppocr-v6-small", "ppocr-v6-small-int8"])
def test_the_detector_finds_the_very_lines_rapidocrs_own_call_finds(model):
    """Our pre-processing, built once with a table for the normalisation, feeds the network the same numbers."""
    page = np.full((352, 256, 3), (150, 60, 40), np.uint8)
    page[40:80, 30:210] = cv2.resize(render_number("2026", 40, shirt=(150, 60, 40), ink=(240, 240, 240)), (180, 40))
    page[150:206, 30:210] = cv2.resize(render_number("4071", 56, shirt=(255, 255, 255), ink=(0, 0, 0)), (180, 56))
    page[300:340] = np.arange(256, dtype=np.uint8)[None, :, None]  # every grey level
    detector = RapidOCRDetector(640, model=model)
    session, fed = detector._detector.session, []
    detector._detector.session = lambda tensor: fed.append(tensor) or session(tensor)
    quads = detector._quads(page)
    assert len(quads) == 2 and np.array_equal(quads, detector._detector(page).boxes)
    assert fed[0].dtype == fed[1].dtype == np.float32 and np.array_equal(fed[0], fed[1])


@pytest.mark.parametrize("model, script", [("ppocr-v4-mobile", "scripts/fetch_line_detector.sh"),
                                           ("ppocr-v6-small-int8", "scripts/build_int8_line_detector.py")])  # fmt: skip
def test_an_unknown_or_missing_line_detector_is_a_clear_error(monkeypatch, tmp_path, model, script):
    with pytest.raises(ValueError, match="unknown text-line detector 'ppocr-v9'"):
        TextStage(["rapidocr"], Mode.BIB, retry_model="ppocr-v9")
    monkeypatch.setitem(text.LINE_DETECTORS, model, tmp_path / "absent.onnx")
    with pytest.raises(text.LineDetectorMissing, match=script):
        RapidOCRDetector(480, model=model)


def test_bib_mode_searches_first_with_the_int8_detector_and_jerseys_keep_float():
    assert PipelineConfig(mode="bib").det_model == "ppocr-v6-small-int8"
    assert PipelineConfig(mode="jersey").det_model == "ppocr-v6-small"


def test_jersey_mode_does_not_turn_words_into_digits():
    """A sponsor's word decoded digits-only would be a number (S -> 5, O -> 0): it must stay no number."""
    rapidocr = text_recognizer("rapidocr", Mode.JERSEY)
    word, number = render_number("SOLO", 48), render_number("50", 48)
    assert [r.text for r in rapidocr.recognize([word, number])] == ["", "50"]
    assert rapidocr.words([word, number]) == [True, False]
    stage = TextStage(["crnn", "rapidocr"], Mode.JERSEY, settle=0.95)
    page = np.full((240, 240, 3), (200, 60, 40), np.uint8)
    page[40 : 40 + word.shape[0], 20 : 20 + word.shape[1]] = word
    assert stage.read_regions([page]) == [[]]
    page[130 : 130 + number.shape[0], 60 : 60 + number.shape[1]] = number
    readings = stage.read_regions([page])[0]
    assert readings and all(r.text == "50" for r in readings)


def test_a_short_word_that_digits_keep_only_part_of_is_words_but_a_number_read_as_letters_is_not():
    """A shirt's "DA" decodes digits-only as 0; a number misread as letters maps letter for digit (B for 8)."""
    rapidocr = text_recognizer("rapidocr", Mode.JERSEY)
    assert rapidocr.words([render_number(text, 48) for text in ("DA", "B", "10")]) == [True, False, False]


def test_bib_mode_keeps_words_from_the_digit_only_engine():
    """In bib mode RapidOCR reads first, decoding every character: a line it reads as letters without a digit
    (a name, a sponsor, a shirt's "DA", which the crnn read as 04; a helmet's lone X, read as 34) is not given to
    the crnn. A bib line's letters come with digits (a prefix), so that line is read."""
    rapidocr = text_recognizer("rapidocr", Mode.BIB)
    assert rapidocr.words([render_number(text, 48) for text in ("SOLO", "DA", "X", "T2182", "4071")]) == [
        True, True, True, False, False]  # fmt: skip
    stage = TextStage(["rapidocr", "crnn"], Mode.BIB, settle=None)
    given: list[np.ndarray] = []
    crnn_recognize = stage.engines[1].recognize
    stage.engines[1].recognize = lambda lines: given.extend(lines) or crnn_recognize(lines)
    page = np.full((300, 240, 3), (200, 60, 40), np.uint8)
    word, number = render_number("SOLO", 48), render_number("4071", 56, shirt=(255, 255, 255), ink=(0, 0, 0))
    page[40 : 40 + word.shape[0], 20 : 20 + word.shape[1]] = word
    page[170 : 170 + number.shape[0], 20 : 20 + number.shape[1]] = number
    readings = stage.read_regions([page])[0]
    assert {r.engine: r.text for r in readings} == {"rapidocr": "4071", "crnn": "4071"}
    assert len(given) == 1  # the bib's line alone: never the word


def test_jersey_mode_reads_each_line_once_with_rapidocr_for_words_and_number_alike():
    """The crnn reads first in jersey mode, so RapidOCR's pass that keeps words from it comes before any engine;
    its readings are RapidOCR's turn as the second engine: its recognizer does not read the lines again."""
    stage = TextStage(["crnn", "rapidocr"], Mode.JERSEY, settle=None)
    rapidocr = stage.engines[1]
    passes: list[int] = []
    probabilities = rapidocr._probabilities
    rapidocr._probabilities = lambda lines, *args: passes.append(len(lines)) or probabilities(lines, *args)
    page = np.full((300, 240, 3), (200, 60, 40), np.uint8)
    word, number = render_number("SOLO", 48), render_number("50", 64)
    page[40 : 40 + word.shape[0], 20 : 20 + word.shape[1]] = word
    page[150 : 150 + number.shape[0], 60 : 60 + number.shape[1]] = number
    readings = stage.read_regions([page])[0]
    assert {r.engine: r.text for r in readings} == {"crnn": "50", "rapidocr": "50"}
    assert len(passes) == 1 and passes[0] >= 2  # one pass over every line found, the word's included


def test_each_detected_line_is_scored_and_its_readings_carry_the_score():
    """The pipeline's legibility classifier, passed as the line scorer, scores every detected line once."""
    page = np.full((240, 240, 3), (200, 60, 40), np.uint8)
    number = render_number("47", 64)
    page[80 : 80 + number.shape[0], 60 : 60 + number.shape[1]] = number
    seen: list[int] = []

    def scorer(lines):
        seen.append(len(lines))
        return np.full(len(lines), 0.25)

    readings = TextStage(["rapidocr"], Mode.JERSEY, line_scorer=scorer).read_regions([page])[0]
    assert [(r.text, r.line_legibility) for r in readings] == [("47", 0.25)] and seen[0] >= 1
    unscored = TextStage(["rapidocr"], Mode.JERSEY).read_regions([page])[0]
    assert [(r.text, r.line_legibility) for r in unscored] == [("47", None)]


def test_beam_search_keeps_a_doubled_digit_that_greedy_decoding_merges():
    """Two steps each a little more '7' than blank: greedy reads one 7; summed over alignments, 77 is likelier."""
    from jerseynum.stages.text import _reading, ctc_beam, ctc_greedy

    def step(**probs):
        row = np.full(11, 1e-4)
        for cls, p in probs.items():
            row[0 if cls == "blank" else int(cls[1:]) + 1] = p
        return row / row.sum()

    probs = np.stack([step(d7=0.9, blank=0.1), step(d7=0.55, blank=0.45), step(d7=0.55, blank=0.45),
                      step(d7=0.9, blank=0.1)])  # fmt: skip
    classes, labels = np.arange(11), ["", *"0123456789"]
    assert ctc_greedy(probs, classes, labels)[0] == "7"
    sequence, probability = ctc_beam(probs)
    assert sequence == (8, 8) and 0.5 < probability < 1
    assert _reading(probs, classes, labels, "test").text == "7"  # only jersey numbers are searched again
    reading = _reading(probs, classes, labels, "test", two_digits=True)
    assert reading.text == "77" and reading.confidence == pytest.approx(probability)
    clear = np.stack([step(d7=0.95, blank=0.05), step(blank=0.95, d7=0.05)])
    assert _reading(clear, classes, labels, "test", two_digits=True).text == "7"  # a clear single digit stays one
