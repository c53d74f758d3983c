from dataclasses import replace

import pytest

from jerseynum.stages.vote import BIB_VOTE, Vote, VoteSettings
from jerseynum.types import NO_NUMBER, Mode, Reading


def reading(text: str, confidence: float) -> Reading:
    return Reading(text, confidence, (confidence,) * len(text), "test")


def test_confidence_weighted_majority_wins():
    result = Vote().decide([reading("10", 0.9), reading("10", 0.8), reading("16", 0.95), reading("1", 0.6)])
    assert result.number == 10 and result.text == "10"
    assert 0 < result.confidence < 1
    assert list(result.votes) == ["10", "16", "1"]  # best first


def test_no_reading_gives_no_number():
    result = Vote().decide([])
    assert result.number == NO_NUMBER and "no accepted reading" in result.reason


def test_low_confidence_readings_do_not_vote():
    result = Vote(settings=VoteSettings(min_confidence=0.5)).decide([reading("23", 0.3), reading("23", 0.45)])
    assert result.number == NO_NUMBER


def test_of_equal_weights_the_number_read_first_leads():
    first, second = reading("12", 0.9), reading("21", 0.9)
    assert Vote().decide([first, second]).number == 12 and Vote().decide([second, first]).number == 21
    assert list(Vote().tally([second, first, reading("12", 0.1)])) == ["21", "12"]  # 12 under the floor: no vote


def test_readings_of_no_weight_are_weak_not_a_division_by_zero():
    result = Vote(settings=VoteSettings(min_confidence=0.0, min_weight=0.0)).decide([reading("12", 0.0)])
    assert result.number == NO_NUMBER and result.reason.startswith("weak")


def test_split_vote_gives_no_number():
    result = Vote(settings=VoteSettings(min_share=0.6)).decide([reading("23", 0.9), reading("28", 0.9)])
    assert result.number == NO_NUMBER and result.reason.startswith("split")


def test_out_of_range_readings_are_ignored_in_jersey_mode_but_not_in_bib_mode():
    readings = [reading("1234", 0.99), reading("12", 0.6)]
    assert Vote(Mode.JERSEY).decide(readings).number == 12
    bib = Vote(Mode.BIB).decide(readings)
    assert bib.number == 1234


def test_bib_keeps_the_printed_leading_zero_in_its_text():
    result = Vote(Mode.BIB).decide([reading("0891", 0.9)])
    assert result.number == 891 and result.text == "0891"


def test_settled_only_once_the_leader_is_far_ahead():
    vote = Vote(settings=VoteSettings(settle_weight=2.0, settle_share=0.8))
    assert not vote.settled([reading("7", 0.99), reading("7", 0.99)][:1])
    assert vote.settled([reading("7", 0.99), reading("7", 0.99), reading("7", 0.9)])
    assert not vote.settled([reading("7", 0.99), reading("7", 0.99), reading("1", 0.99)])


def test_double_zero_is_a_jersey_number_of_its_own():
    result = Vote(Mode.JERSEY).decide([reading("00", 0.9), reading("00", 0.8), reading("0", 0.7)])
    assert (result.number, result.text) == (0, "00")  # SoccerNet's JSON gets 0; the text keeps what was worn
    assert set(result.votes) == {"00", "0"}


def line_read(text: str, confidence: float, legibility: float | None, box=(0, 0, 10, 10)) -> Reading:
    return Reading(text, confidence, (confidence,) * len(text), "test", box, legibility)


def test_a_reading_from_a_detected_line_votes_only_when_reader_or_line_is_sure():
    vote = Vote(Mode.BIB, VoteSettings(min_confidence=0.8, max_line_doubt=0.01))
    assert vote.decide([line_read("2475", 0.995, 0.1)]).number == 2475  # a sure reading, whatever the line
    assert vote.decide([line_read("2475", 0.874, 0.97)]).number == 2475  # a legible line, a less sure reading
    assert vote.decide([line_read("2006", 0.96, 0.1)]).number == NO_NUMBER  # both in doubt: a year on a shirt
    assert vote.decide([line_read("2475", 0.75, 1.0)]).number == NO_NUMBER  # under the floor
    assert Vote(Mode.JERSEY).decide([reading("7", 0.7)]).number == 7  # a crop read whole has no line score


def test_a_reading_of_a_crop_read_whole_votes_only_when_reader_or_crop_is_sure():
    vote = Vote(Mode.JERSEY)
    assert vote.decide([replace(reading("7", 0.7), crop_legibility=0.1)]).number == NO_NUMBER  # a leaf read 7
    assert vote.decide([replace(reading("7", 0.7), crop_legibility=0.8)]).number == 7  # a number crop, read unsurely
    assert vote.decide([replace(reading("7", 0.95), crop_legibility=0.06)]).number == 7  # a sure reading
    assert vote.decide([reading("7", 0.7)]).number == 7  # a crop nobody scored


def test_readings_too_unsure_to_vote_still_dissent_in_jersey_mode():
    # a hidden number: the frames keep reading other digits unsurely, and one frame reads a shirt's print surely
    frames = [reading("1", 0.98), reading("0", 0.45), reading("0", 0.4), reading("5", 0.49), reading("17", 0.35)]
    result = Vote(Mode.JERSEY).decide(frames)
    assert result.number == NO_NUMBER and result.reason.startswith("split")
    assert Vote(Mode.JERSEY, VoteSettings(unsure_dissent=False)).decide(frames).number == 1
    agreeing = [reading("1", 0.98), reading("1", 0.45), reading("0", 0.4)]  # unsure reads of the winner count for it
    assert Vote(Mode.JERSEY).decide(agreeing).number == 1
    assert Vote(Mode.BIB, BIB_VOTE).decide([reading("14", 0.97), reading("30", 0.75), reading("38", 0.6)]).number == 14


def test_longer_than_finds_a_confident_reading_the_text_is_part_of():
    vote = Vote(Mode.BIB, VoteSettings(min_confidence=0.8))
    assert vote.longer_than("1104", [reading("1104", 0.99), reading("11040", 0.95)]) == "11040"
    assert vote.longer_than("1104", [reading("1104", 0.99), reading("11040", 0.6)]) is None  # too unsure to vote
    # a line the vote doubts still shows the whole number there: 0462 is a piece of the runner's 20462
    doubted = line_read("20462", 0.9, 0.1)
    assert not vote.counts(doubted)
    assert vote.longer_than("0462", [line_read("0462", 0.99, 0.9), doubted]) == "20462"
    assert vote.longer_than("0462", [line_read("0462", 0.99, 0.9), line_read("2046200", 0.99, 0.9)]) is None  # no bib
    assert vote.longer_than("1104", [reading("1104", 0.99), reading("2104", 0.99)]) is None  # not containing it
    assert vote.longer_than("20462", [reading("20462", 0.99), reading("20", 0.99)]) is None  # shorter


def test_a_line_scored_legible_outvotes_lines_scored_illegible():
    # a shirt's year read in three frames from lines scored illegible, the bib once from a legible line
    year = [line_read("2000", 0.99, 0.1, (90, 180 + i, 130, 200)) for i in range(3)]
    assert Vote(Mode.BIB).decide(year + [line_read("560", 1.0, 0.95, (60, 275, 138, 321))]).number == 560
    assert Vote(Mode.BIB).decide(year + [line_read("560", 1.0, 0.3)]).number == 560  # a far bib: low, not illegible
    # a bib in a small moving crop scores 0.4-0.6: two reads of a shirt's 21 at 0.6-0.7 must not outvote it
    bib = [line_read("3638", 1.0, score, (17, 200 + i, 112, 300)) for i, score in enumerate((0.57, 0.49, 0.44, 0.45))]
    shirt = [line_read("21", 0.98, 0.73, (96, 157, 148, 208)), line_read("21", 1.0, 0.62, (71, 162, 109, 196))]
    assert Vote(Mode.BIB).decide(bib + shirt).number == 3638


def test_a_number_read_on_several_lines_all_scored_illegible_is_print_not_a_number():
    vote = Vote(Mode.BIB)
    frames = [line_read("2006", 0.99, 0.1, (90, 180 + i, 130, 200)) for i in range(4)]
    result = vote.decide(frames)
    assert result.number == NO_NUMBER and result.reason.startswith("illegible print") and "4 lines" in result.reason
    assert vote.decide(frames[:1]).number == 2006  # one line's score alone is too noisy to decide
    both_engines = [frames[0], replace(frames[0], engine="other")]  # one line read twice is still one line
    assert vote.decide(both_engines).number == 2006
    small_bib = [line_read("3531", 1.0, 0.31, (46, 141, 85, 163)), line_read("3531", 1.0, 0.36, (43, 143, 85, 169))]
    assert vote.decide(small_bib).number == 3531  # a far runner's bib: low scores, but not that low
    assert vote.decide(frames + [reading("2006", 0.99)]).number == 2006  # a crop read whole has no line score


def test_a_line_clear_of_the_crop_sides_outvotes_lines_touching_them():
    neighbour = [replace(line_read("204", 1.0, 0.96, (303, 396, 346, 436)), at_side=True),
                 replace(line_read("20", 1.0, 0.58, (312, 391, 346, 429)), at_side=True)]  # fmt: skip
    runner = line_read("71652", 1.0, 0.67, (149, 332, 262, 384))
    assert Vote(Mode.BIB).decide(neighbour + [runner]).number == 71652
    assert Vote(Mode.BIB).decide(neighbour[:1]).number == 204  # a bib at the side is read when nothing else is
    assert Vote(Mode.BIB, VoteSettings(min_confidence=0.8, whole_lines_first=False)).decide(neighbour + [runner]).number == NO_NUMBER


def test_weight_sums_every_counting_reading_of_a_number_whichever_line_it_came_from():
    readings = [replace(line_read("3638", 1.0, 0.5), at_side=True), line_read("3638", 0.99, 0.6, (30, 0, 90, 20)),
                line_read("3638", 0.95, 0.01), line_read("21", 1.0, 0.7)]  # fmt: skip
    assert Vote(Mode.BIB).tally(readings)["3638"] == pytest.approx(0.99)  # the vote keeps the read clear of a side
    assert Vote(Mode.BIB).weight("3638", readings) == pytest.approx(1.99)  # a doubtful read of a doubtful line: never


def test_engines_disagreeing_about_one_unclear_frame_give_no_number():
    # the only frame read of a hidden tracklet: one engine reads 2, the other 0, each near 0.5
    coin_toss = [reading("2", 0.52), reading("0", 0.515)]
    result = Vote(Mode.JERSEY).decide(coin_toss)
    assert result.number == NO_NUMBER and result.reason.startswith("unsure")
    assert Vote(Mode.JERSEY, VoteSettings(min_answer=0.0)).decide(coin_toss).number == 2
    # one engine surer than the other still answers
    assert Vote(Mode.JERSEY).decide([reading("2", 0.8), reading("0", 0.52)]).number == 2
