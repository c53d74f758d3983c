"""benchmarks/photos.py's box-matched score on hand-made decisions: a number on a labelled bib is right or wrong
against it, and a number elsewhere is an audited unlabelled runner's bib or a piece of a bib or junk."""

from benchmarks.photos import box_matched, race_start_lists
from jerseynum.photos.index import BibNumber

BIBS = {"a.jpg": [{"box_xyxy": [10, 10, 50, 30], "number": "1234"}, {"box_xyxy": [100, 10, 140, 30], "number": "77"}]}


def test_numbers_elsewhere_are_split_by_the_audit():
    decided = {"a.jpg": [
        BibNumber("1234", 0.9, (12, 12, 48, 28)),  # on the first bib, right
        BibNumber("71", 0.8, (101, 11, 139, 29)),  # on the second, wrong
        BibNumber("0555", 0.9, (200, 10, 240, 30)),  # elsewhere: the audited bib 555 (leading zeros dropped)
        BibNumber("12", 0.7, (300, 10, 320, 30)),  # elsewhere, not audited: a piece or junk
        BibNumber("999", 0.2, (400, 10, 440, 30), status="unsure"),  # hidden: not scored at all
    ]}  # fmt: skip
    row, judged = box_matched(decided, BIBS, {"a.jpg": {"555"}})
    assert (row["right"], row["wrong"], row["elsewhere"]) == (1, 1, 2)
    assert (row["elsewhere_unlabelled_bibs"], row["elsewhere_pieces_or_junk"]) == (1, 1)
    assert (row["precision"], row["recall"]) == (0.5, 0.5)
    assert sorted(ok for _, ok, _, _ in judged) == [False, True]


def test_each_race_gets_a_start_list_of_its_own_bibs():
    """An organiser's list is of one race: a bib of the other race, read here, is not on it (nor snapped to it)."""
    labels = {"set1_01.JPG": ["168", "3276"], "set1_02.JPG": ["847"], "set2_01.JPG": ["11040", "10264"]}
    lists = race_start_lists(labels)
    assert sorted(lists) == ["set1", "set2"]
    assert {"168", "3276", "847"} <= lists["set1"].bibs and not {"11040", "10264"} & lists["set1"].bibs
    assert {"11040", "10264"} <= lists["set2"].bibs and not {"168", "3276", "847"} & lists["set2"].bibs
    assert len(lists["set1"].bibs) == 6 and len(lists["set2"].bibs) == 4  # as many decoys of the same lengths
    assert sorted(len(bib) for bib in lists["set2"].bibs) == [5, 5, 5, 5]
