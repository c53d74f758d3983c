"""Vote: turn the per-frame readings of a tracklet into one number, or NO_NUMBER when the evidence is weak.

Each reading that the mode accepts votes for its digit string with a weight equal to its confidence; readings
under `min_confidence` are ignored. Readings of detected text lines weigh their line too: lines the legibility
classifier scores illegible, and lines touching the crop's side, give way to the others (`Vote.voters`), and a
number read only on illegible lines is print, not a number. A small crop read whole weighs the classifier's score
of the crop the same way. The leader wins when its weight reaches `min_weight`, its share of all weight reaches
`min_share` and the vote's confidence in it `min_answer`. The defaults were chosen on the development data
(README, "Vote thresholds"); they are parameters so a user can trade recall for precision.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from jerseynum.types import NO_NUMBER, Mode, Reading


@dataclass(frozen=True)
class VoteResult:
    number: int
    text: str
    confidence: float
    reason: str
    votes: dict[str, float]


@dataclass(frozen=True)
class VoteSettings:
    min_confidence: float = 0.5  # a reading below this does not vote
    # ... nor does one read in a detected line unless the recognizer's doubt (1 - confidence) times the legibility
    # classifier's doubt about the line (1 - its score) is at most this: either may be unsure, not both. At 0.02 a
    # reading at 0.9 needs a line scoring 0.8, one at 0.98 any line (docs/results.md, "A -1 you can trust").
    # 0.01 lost an RBNR runner read right (2475 at 0.931 from a line scored 0.81).
    max_line_doubt: float = 0.02
    # The same for a reading of a small crop read whole, with the classifier's score of the crop: a road, a knee or
    # a leaf scores 0.05-0.4 and the engines still read a digit into it at 0.5-0.9 (jersey mode gave 66 of 400
    # bib-free photo regions a number), where number crops score high. At 0.1 a reading at 0.8 needs a crop
    # scored 0.5, one at 0.9 any crop: the regions' right -1 0.835 -> 0.955, genL the same, the scored SoccerNet
    # number crops read alone through the pipeline 0.916 -> 0.909 (0.05: regions 0.973 at nearly twice the loss on
    # lone crops; docs/results.md, "A -1 you can trust").
    max_crop_doubt: float = 0.1
    # A line the legibility classifier scores under this is illegible. Once one voting reading comes from a line
    # that is not, readings from illegible lines do not vote: a runner's shirt year, read in every frame from lines
    # scored 0.06-0.13, must not outvote the bib read once from a line scored 0.95. And a number read on two or
    # more lines, every one illegible, is print the classifier keeps rejecting, not a number a person reads
    # (that year in all 8 frames of a tracklet). One line never decides alone: its score is noisy, and on the
    # RBNR runners 2 of 208 right bib readings came from a line scored under 0.2 (8 of 24 invented ones did).
    # At 0.5 the first rule cost video a bib: real bibs in small moving crops score 0.4-0.6, and two reads of a
    # shirt's 21 at 0.6-0.7 outvoted four of the runner's 3638 at 0.44-0.57 (docs/results.md, "A -1 you can trust").
    illegible_line: float = 0.2
    # Likewise, once one voting reading comes from a line clear of the crop's sides, readings of lines touching a
    # side do not vote: a neighbour's bib half in view (20 and 204 of 20431) outvoted a runner's 71652.
    whole_lines_first: bool = True
    min_weight: float = 0.5  # the winner needs at least this much summed confidence
    min_share: float = 0.5  # ... and at least this share of all votes
    # ... counting, against it, the readings too unsure to vote: frames that keep reading other numbers, unsurely,
    # say the number is not there. Eight frames of a runner whose bib was hidden read 17, 5, 5, 0, 0, 0 under the
    # bars and 1 three times, once surely from the shirt's print; the 1 took every vote (jersey mode, 8-frame
    # illegible tracklets of all 86 runners: 0.930 -> 0.965, genL and lone number crops the same; docs/results.md,
    # "A -1 you can trust", session 29). Not in bib mode: there a legible frame among illegible ones is read surely
    # while the others read pieces unsurely, and the one-or-two-legible-frame tracklets fell 0.907 -> 0.814.
    unsure_dissent: bool = True
    # The vote's own confidence (`decide`: the chance that an agreeing reading is right, times the share) under
    # this answers -1: the two engines disagreeing about one unclear frame, each near 0.5, is a coin toss, not a
    # number. Jersey mode, every answer under 0.3 in one run was wrong: a lone basketball crop's 22 read 3, a
    # hidden runner's blurred bib, and the only frame read of an 8-frame hidden tracklet, a 2 against a 0 at 0.52
    # each (illegible tracklets 0.965 -> 0.977). At 0.4 it would also take the 5 right of 18 lone crops answered
    # at 0.3-0.4 (docs/results.md, "A -1 you can trust", item 17). Bib votes, from 0.8, never fall under 0.4.
    min_answer: float = 0.3
    settle_weight: float = 3.0  # early stop: the leader has this much weight ...
    settle_share: float = 0.85  # ... and this share, so more frames would not change the outcome


BIB_VOTE = VoteSettings(min_confidence=0.8, unsure_dissent=False)
"""Bib mode: RapidOCR reads a legible bib with near certainty (on the RBNR runners it reads right, the 5th
percentile of its confidence is 0.998), while what it reads into a belt, a fold or a blurred bib has a median of
0.76; so bib readings vote from 0.8, and jersey readings, read far less surely, from 0.5 (docs/results.md, "A -1 you can
trust")."""


def part_of(text: str, longer: str) -> bool:
    """Whether the digit string `text` lies inside the longer `longer` (1104 in 11040): a piece of it."""
    return len(longer) > len(text) and text in longer


class Vote:
    def __init__(self, mode: Mode = Mode.JERSEY, settings: VoteSettings = VoteSettings()) -> None:
        self.mode = mode
        self.settings = settings

    def shows(self, reading: Reading) -> bool:
        """Whether `reading` shows a number of the mode as confidently as a vote needs, whatever its line: a line
        the vote doubts still shows that a number is there, as evidence about the numbers read beside it."""
        return self.mode.accepts(reading.text) and reading.confidence >= self.settings.min_confidence

    def counts(self, reading: Reading) -> bool:
        """Whether `reading` votes: it `shows` a number, from a legible enough line."""
        if not self.shows(reading):
            return False
        doubt = 1.0 - reading.confidence
        if reading.line_legibility is not None:
            return doubt * (1.0 - reading.line_legibility) <= self.settings.max_line_doubt
        if reading.crop_legibility is not None:
            return doubt * (1.0 - reading.crop_legibility) <= self.settings.max_crop_doubt
        return True

    def voters(self, readings: list[Reading], unsure_too: bool = False) -> list[Reading]:
        """The readings that vote: those that count, less those from illegible lines once a line that is not
        illegible voted, and then less those from lines touching the crop's side once a line clear of it voted.
        With `unsure_too`, also the readings that show a number of the mode too unsurely to count, set aside by
        the same rules: the dissent (`VoteSettings.unsure_dissent`)."""
        counted = [reading for reading in readings if self.counts(reading)]
        kept = [reading for reading in readings if self.mode.accepts(reading.text)] if unsure_too else counted
        if any(not self._illegible(r) and r.line_legibility is not None for r in counted):
            kept = [r for r in kept if not self._illegible(r)]
        if self.settings.whole_lines_first and any(r.box is not None and not r.at_side for r in counted):
            kept = [r for r in kept if not r.at_side]
        return kept

    def _illegible(self, reading: Reading) -> bool:
        return reading.line_legibility is not None and reading.line_legibility < self.settings.illegible_line

    def tally(self, readings: list[Reading]) -> dict[str, float]:
        """Summed confidence per accepted digit string, best first."""
        return _summed(self.voters(readings))

    def weight(self, text: str, readings: list[Reading]) -> float:
        """The summed confidence of the counting readings of `text`, whatever line they came from: how strongly
        `readings` show that number at all, where `tally` keeps only what the vote weighs."""
        return sum(r.confidence for r in readings if r.text == text and self.counts(r))

    def illegible_print(self, winners: list[Reading]) -> int:
        """How many lines the winning `winners` came from when they are two or more and every one is illegible;
        else 0. Two engines reading one line share its box and score, so a line counts once."""
        lines = {(r.box, r.line_legibility) for r in winners}
        return len(lines) if len(lines) >= 2 and all(self._illegible(r) for r in winners) else 0

    def decide(self, readings: list[Reading]) -> VoteResult:
        voters = self.voters(readings)
        votes = _summed(voters)
        if not votes:
            return VoteResult(NO_NUMBER, "", 0.0, f"no accepted reading among {len(readings)}", votes)
        text, weight = next(iter(votes.items()))
        if weight < self.settings.min_weight or weight <= 0:
            return VoteResult(NO_NUMBER, "", 0.0, f"weak: {text} has weight {weight:.2f} < {self.settings.min_weight}", votes)
        share = weight / sum(votes.values())
        if self.settings.unsure_dissent:
            shown = _summed(self.voters(readings, unsure_too=True))
            share = min(share, shown[text] / sum(shown.values()))
        if share < self.settings.min_share:
            return VoteResult(NO_NUMBER, "", 0.0, f"split: {text} has share {share:.2f} < {self.settings.min_share}", votes)
        winners = [reading for reading in voters if reading.text == text]
        if lines := self.illegible_print(winners):
            reason = f"illegible print: {text} read on {lines} lines, each scored under {self.settings.illegible_line}"
            return VoteResult(NO_NUMBER, "", 0.0, reason, votes)
        # Probability that at least one agreeing reading is right, discounted by the dissent.
        agreeing_wrong = 1.0
        for reading in winners:
            agreeing_wrong *= 1.0 - min(reading.confidence, 1.0)
        confidence = (1.0 - agreeing_wrong) * share
        if confidence < self.settings.min_answer:
            reason = f"unsure: {text} has confidence {confidence:.2f} < {self.settings.min_answer}"
            return VoteResult(NO_NUMBER, "", 0.0, reason, votes)
        return VoteResult(int(text), text, confidence, f"{text}: weight {weight:.2f}, share {share:.2f}", votes)

    def longer_than(self, text: str, readings: list[Reading]) -> str | None:
        """A reading that `shows` a longer number containing `text` (`text` may be a fragment of it), if any."""
        return next((r.text for r in readings if part_of(text, r.text) and self.shows(r)), None)

    def settled(self, readings: list[Reading]) -> bool:
        """True once the leader is so far ahead that the remaining frames need not be read."""
        votes = self.tally(readings)
        if not votes:
            return False
        weight = next(iter(votes.values()))
        s = self.settings
        return weight >= s.settle_weight and weight / sum(votes.values()) >= s.settle_share


def _summed(voters: list[Reading]) -> dict[str, float]:
    """Summed confidence per digit string of `voters`, best first; of equal weights, the number read first leads
    (the sort is stable): a track's earlier frames, a frame's surer engine (the cascade's order). A challenger must
    overtake the leader, not equal it, so a track reading a bib and a piece of it in turn does not flicker."""
    votes: dict[str, float] = defaultdict(float)
    for reading in voters:
        votes[reading.text] += reading.confidence
    return dict(sorted(votes.items(), key=lambda item: -item[1]))
