"""Pass 2: decide the numbers of a whole race from what pass 1 read, without reading a photo again.

A photo read alone leaves errors a person looking at the whole folder would not make: a fragment of a bib (1026
for 10264) in a race whose bibs all have 5 digits, a bib hidden in one photo but read in the next shot of the
same burst, an OCR confusion (a 3 read as an 8) that the organiser's start list would correct. So the tagger
stores each runner's reading and appearance (`index.RunnerRead`), and this pass decides over all of them:

1. per photo: a reading the vote is unsure of is kept as "unsure"; a number inside another number of the same
   photo is a partial read of it ("fragment"); a number shown for two runners of a photo is shown once, for the
   surer read ("duplicate": another runner's region took in the same bib);
2. with a start list (`startlist.StartList`): a listed bib is kept, a plausible OCR misread of exactly one listed
   bib is "snapped" to it, anything else is "rejected"; without one, the event's bib format (the digit counts of
   its confident reads) is learnt;
3. runners are clustered by appearance (`identity.cluster`);
4. every number gets a calibrated probability that it is right (`CALIBRATION`: the vote's confidence, the fit to
   the event's format, the same runner's reads in other photos, the start list), and one less likely right than
   wrong is hidden: "demoted" where its digit count does not fit the event's bibs, else "unsure";
5. a cluster that reads one number surely gives it to its runners whose bib was not read ("propagated", with the
   photo it was read in), and replaces partial reads of it ("completed");
6. a person's corrections win over all of it (`apply_corrections`).

Nothing is deleted: hidden decisions stay in the index with the reading and the reason (`index.HIDDEN`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from jerseynum.photos.identity import UNSEEN_COLOUR, IdentitySettings, Signature, cluster
from jerseynum.photos.index import SHOWN, BibNumber, PhotoIndex, RunnerRead, StaleReadsError, StoredRunner
from jerseynum.photos.startlist import StartList

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventSettings:
    # A photo read alone (before the event is decided) shows a number whose vote has this confidence (chosen on
    # the RBNR development photos: F1 0.82 -> 0.86). The event's decision weighs every read by its calibrated
    # probability instead.
    min_confidence: float = 0.8
    drop_fragments: bool = True  # a number inside another number of the same photo is a partial read of it
    # The event's bib format is learnt once this many numbers were read with a vote of `format_confidence` ...
    format_min_reads: int = 20
    format_confidence: float = 0.95
    # ... and a hidden number of a digit count that fewer than this share of them have is called "demoted" (its
    # digit count does not fit the event's bibs), rather than "unsure".
    format_min_share: float = 0.1
    # A number is shown when it is more likely right than wrong: the cut that makes the fewest errors.
    min_probability: float = 0.5
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    # A face the detector scored under this links no one: its descriptor counts as missing (`signature`). Such
    # detections are often no face (a hand, a knee) or a face half hidden, and dlib's alignment of them gives
    # descriptors that fall near strangers': set1_15's hand took 3638 from a runner of set1_02, and a misc runner
    # another's 646. Of the faces above a right read 5 % (RBNR) and 11 % (misc) score under 0.7, of the others 32 %.
    min_face_score: float = 0.7
    # A cluster gives its number to its other runners only when its reads agree (the number holds at least this
    # share of the cluster's shown reads' probability) and one of them is at least `propagate_from` likely right.
    propagate_share: float = 0.8
    propagate_from: float = 0.9
    cluster_window: int = 3000  # runners clustered together at most (`identities`)


@dataclass
class EventReport:
    runners: int = 0
    clusters: int = 0  # identity clusters of more than one runner
    statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def _number(read: RunnerRead, position: int, status: str, reason: str) -> BibNumber:
    return BibNumber(read.number, read.confidence, read.box or read.region, status, "", reason, position)


def decide_photo(runners: list[RunnerRead], settings: EventSettings = EventSettings()) -> list[BibNumber]:
    """The photo's own decisions: what can be decided without the rest of the event (step 1). `runner` is the
    reading's position in `runners`. One number per digit string: where several runners show it, the surest."""
    decided = [
        _number(read, k, "read", "") if read.confidence >= settings.min_confidence
        else _number(read, k, "unsure", f"the vote's confidence {read.confidence:.2f} < {settings.min_confidence}")
        for k, read in enumerate(runners) if read.number
    ]  # fmt: skip
    if settings.drop_fragments:
        shown = sorted({n.number for n in decided if n.status == "read"})  # sorted: one reason, whatever the order
        decided = [replace(n, status="fragment", reason=f"part of {whole}")
                   if n.status == "read" and (whole := next((o for o in shown if n.number != o and n.number in o), None))
                   else n for n in decided]  # fmt: skip
    return _one_per_number(decided)


def _one_per_number(numbers: list[BibNumber]) -> list[BibNumber]:
    """Shown numbers: the surest of each digit string, the others kept hidden as its duplicates (another runner's
    region took in the same bib); hidden ones all kept. Best first."""
    best: dict[str, BibNumber] = {}
    hidden = []
    for n in sorted(numbers, key=lambda n: -n.confidence):
        if n.status not in SHOWN:
            hidden.append(n)
        elif n.number not in best:
            best[n.number] = n
        else:
            hidden.append(replace(n, status="duplicate", reason=f"{n.number} is shown for another runner of the photo"))
    return sorted(best.values(), key=lambda n: -n.confidence) + hidden


def apply_start_list(numbers: list[BibNumber], start_list: StartList,
                     digit_confidences: Mapping[int | None, Sequence[float] | None] | None = None) -> list[BibNumber]:  # fmt: skip
    """Step 2 with a start list: each shown number is kept, snapped to a listed bib, or rejected.
    `digit_confidences`, by runner, how surely each digit of its number was read (`StartList.snap`)."""
    decided = []
    for n in numbers:
        if n.status != "read":
            decided.append(n)
            continue
        snap = start_list.snap(n.number, (digit_confidences or {}).get(n.runner))
        if snap.status == "listed":
            decided.append(
                n if snap.number == n.number else replace(n, number=snap.number, read=n.number, reason=snap.reason)
            )
        elif snap.status == "snapped":
            decided.append(replace(n, number=snap.number, status="snapped", read=n.number, reason=snap.reason))
        else:
            decided.append(replace(n, status="rejected", reason=snap.reason))
    return decided


@dataclass(frozen=True)
class BibFormat:
    """The digit counts of an event's bibs, learnt from its confident reads."""

    counts: dict[int, int]  # digit count -> confident reads of that many digits

    @classmethod
    def learn(cls, numbers: list[BibNumber], settings: EventSettings) -> BibFormat | None:
        confident = [n for n in numbers if n.status == "read" and n.confidence >= settings.format_confidence]
        if len(confident) < settings.format_min_reads:
            return None  # too few reads to say what a bib of this event looks like
        return cls(dict(Counter(len(n.number) for n in confident)))

    def share(self, number: str) -> float:
        """The share of the confident reads with as many digits as `number`."""
        return self.counts.get(len(number), 0) / sum(self.counts.values())

    def describe(self) -> str:
        total = sum(self.counts.values())
        return ", ".join(f"{length} digits {count / total:.0%}" for length, count in sorted(self.counts.items()))


def signature(runner: StoredRunner, min_face_score: float = EventSettings.min_face_score) -> Signature:
    """A stored runner's appearance; a face the detector scored under `min_face_score` counts as none."""
    colour = runner.read.colour if runner.read.colour is not None else UNSEEN_COLOUR
    sure_face = runner.read.evidence.get("face_score", 1.0) >= min_face_score
    return Signature(runner.read.face_embedding if sure_face else None, colour, runner.taken)


FEATURES = ("vote", "format", "support", "seen", "listed")


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1 - 1e-4)  # a vote of exactly 1.0 is common: the clip keeps it finite
    return math.log(p / (1 - p))


def features(
    number: BibNumber, bib_format: BibFormat | None, support: int, seen: int, start_list: StartList | None
) -> list[float]:
    """What the calibration weighs (FEATURES): the vote's confidence in the number as read (its logit); the share of the event's
    confident reads with as many digits (1 where the format is unknown); how many other photos of the same runner
    read the number; how many other photos of the event read it, whoever wears it (a race gives each runner one
    bib, so a number read again elsewhere is a real bib, where the identity clusters often miss the runner); and
    whether the start list lists it (1), it was snapped to a listed bib (0.5), or there is no list or it is not on
    it (0). Counts stop at 2. The vote already sums its readings' agreement and character confidences (a fit with
    them too gave them no weight of their own)."""
    share = bib_format.share(number.number) if bib_format is not None else 1.0
    listed = 0.0 if start_list is None else {"read": 1.0, "snapped": 0.5}.get(number.status, 0.0)
    return [_logit(number.confidence), share, min(support, 2), min(seen, 2), listed]


@dataclass(frozen=True)
class Calibration:
    """P(number right) = logistic(intercept + weights . features): fitted by `python benchmarks/photos.py
    --fit-calibration` on the numbers lying on a labelled bib in the RBNR photos of the trained half
    (`splits.rbnr_scored` false), with and without a simulated start list; measured on the other half and on
    misc_bib_photos (docs/results.md, "Race photos")."""

    weights: tuple[float, ...]
    intercept: float

    def probability(self, values: list[float]) -> float:
        z = self.intercept + sum(w * v for w, v in zip(self.weights, values, strict=True))
        return 1 / (1 + math.exp(-z))


CALIBRATION = Calibration(weights=(0.628, 2.135, 0.095, 0.686, 1.298), intercept=-3.827)


def candidates(runners: list[StoredRunner], start_list: StartList | None,
               settings: EventSettings) -> tuple[dict[str, list[BibNumber]], BibFormat | None]:  # fmt: skip
    """Steps 1-2: every runner's number with its photo's own decision (`runner`: the runner's id), then the start
    list's; and the event's bib format learnt from them."""
    by_photo: dict[str, list[StoredRunner]] = defaultdict(list)
    for runner in runners:
        by_photo[runner.path].append(runner)
    decided: dict[str, list[BibNumber]] = {}
    every_read = replace(settings, min_confidence=0.0)  # the calibration weighs the vote's confidence
    for path, photo_runners in by_photo.items():
        numbers = decide_photo([r.read for r in photo_runners], every_read)
        decided[path] = [replace(n, runner=photo_runners[n.runner].id) for n in numbers]
    if start_list is not None:
        sureness = {runner.id: runner.read.digit_confidences() for runner in runners}
        decided = {path: apply_start_list(numbers, start_list, sureness) for path, numbers in decided.items()}
    bib_format = BibFormat.learn([n for numbers in decided.values() for n in numbers], settings)
    return decided, bib_format


def calibrated(decided: dict[str, list[BibNumber]], runners: list[StoredRunner], labels: list[int],
               bib_format: BibFormat | None, start_list: StartList | None,
               calibration: Calibration = CALIBRATION) -> dict[str, list[tuple[BibNumber, list[float]]]]:  # fmt: skip
    """Each number with its features and, as its confidence, the calibrated probability that it is right."""
    cluster_of = {r.id: label for r, label in zip(runners, labels)}
    readers: dict[tuple[int, str], set[str]] = defaultdict(set)  # (cluster, number) -> photos reading it
    anywhere: dict[str, set[str]] = defaultdict(set)  # number -> photos reading it
    for path, numbers in decided.items():
        for n in numbers:
            if n.status in SHOWN:
                readers[(cluster_of[n.runner], n.number)].add(path)
                anywhere[n.number].add(path)
    out = {}
    for path, numbers in decided.items():
        out[path] = []
        for n in numbers:
            support = len(readers[(cluster_of[n.runner], n.number)] - {path})
            values = features(n, bib_format, support, len(anywhere[n.number] - {path}), start_list)
            probability = calibration.probability(values)
            if n.status == "snapped":  # the fit saw sparse lists, where a snap is rarely chance
                probability *= 1.0 - start_list.snap_chance(n.read)
            out[path].append((replace(n, confidence=round(probability, 4)), values))
    return out


def propagate(runners: list[StoredRunner], decided: dict[str, list[BibNumber]], labels: list[int],
              settings: EventSettings) -> dict[str, list[BibNumber]]:  # fmt: skip
    """Step 3: within each identity cluster whose reads agree on one number, give it to the runners without a
    shown number of their own ("propagated") and replace partial reads of it ("completed"). A propagated number
    is as likely right as its source read (the identity clusters' own errors: docs/results.md, "Race photos")."""
    by_runner = {n.runner: (path, n) for path, numbers in decided.items() for n in numbers if n.status in SHOWN}
    members: dict[int, list[StoredRunner]] = defaultdict(list)
    for runner, label in zip(runners, labels, strict=True):
        members[label].append(runner)
    out = {path: list(numbers) for path, numbers in decided.items()}
    for group in members.values():
        reads = [by_runner[r.id] for r in group if r.id in by_runner]
        if len(group) < 2 or not reads:
            continue
        # A partial read (1026) supports the whole number it is part of (10264).
        weights = {n.number: sum(o.confidence for _, o in reads if o.number in n.number) for _, n in reads}
        number = max(weights, key=lambda text: (weights[text], len(text)))
        weight = weights[number]
        source_path, source = max(((p, n) for p, n in reads if n.number == number), key=lambda pn: pn[1].confidence)
        if (
            weight < settings.propagate_share * sum(n.confidence for _, n in reads)
            or source.confidence < settings.propagate_from
        ):
            continue
        for runner in group:
            own = by_runner.get(runner.id)
            if own is None:
                gift = BibNumber(number, source.confidence, runner.read.region, "propagated", runner.read.number,
                                 f"the same runner reads {number} in {source_path}", runner.id, source_path)  # fmt: skip
                out.setdefault(runner.path, []).append(gift)
            elif own[1].number != number and own[1].number in number:
                path, partial = own
                out[path] = [replace(n, number=number, confidence=source.confidence, status="completed",
                                     read=n.number, reason=f"part of {number}, read for the same runner in {source_path}")
                             if n is partial else n for n in out[path]]  # fmt: skip
    return {path: _one_per_number(numbers) for path, numbers in out.items()}


def scored_candidates(runners: list[StoredRunner], start_list: StartList | None = None,
                      settings: EventSettings = EventSettings(), calibration: Calibration = CALIBRATION
                      ) -> tuple[dict[str, list[tuple[BibNumber, list[float]]]], list[int], BibFormat | None]:  # fmt: skip
    """Steps 1-2 and the identity clusters: every number with its features and calibrated probability, the
    runners' cluster labels, and the event's bib format."""
    decided, bib_format = candidates(runners, start_list, settings)
    labels = identities(runners, settings)
    return calibrated(decided, runners, labels, bib_format, start_list, calibration), labels, bib_format


def identities(runners: list[StoredRunner], settings: EventSettings = EventSettings()) -> list[int]:
    """Each runner's identity cluster. Clustering compares every pair, so a large race is clustered in windows of
    `settings.cluster_window` runners in photo order (a photographer's file names follow the shooting order, and
    a runner's photos are seconds or minutes apart): 20,000 runners at once would need 3 GB of distances."""
    photo_ids = {path: k for k, path in enumerate(dict.fromkeys(r.path for r in runners))}
    labels: list[int] = []
    for start in range(0, len(runners), settings.cluster_window):
        window = runners[start : start + settings.cluster_window]
        signatures = [signature(r, settings.min_face_score) for r in window]
        found = cluster(signatures, settings.identity, [photo_ids[r.path] for r in window])
        offset = max(labels, default=-1) + 1
        labels += [offset + label for label in found]
    return labels


def decide_event(runners: list[StoredRunner], start_list: StartList | None = None,
                 settings: EventSettings = EventSettings()) -> tuple[dict[str, list[BibNumber]], dict[int, int]]:  # fmt: skip
    """Pass 2 over every runner of the event: per photo path its decided numbers (`runner`: the runner's id), and
    each runner's identity cluster."""
    scored, labels, bib_format = scored_candidates(runners, start_list, settings)
    decided = {path: [_judged(n, values, bib_format, settings) for n, values in numbers]
               for path, numbers in scored.items()}  # fmt: skip
    decided = propagate(runners, decided, labels, settings)
    return decided, {runner.id: label for runner, label in zip(runners, labels, strict=True)}


def _judged(number: BibNumber, values: list[float], bib_format: BibFormat | None, settings: EventSettings) -> BibNumber:
    """A shown number less likely right than wrong is hidden: "demoted" where its digit count does not fit the
    event's bibs, else "unsure"."""
    if number.status not in SHOWN or number.confidence >= settings.min_probability:
        return number
    if bib_format is not None and values[FEATURES.index("format")] < settings.format_min_share:
        return replace(number, status="demoted", reason=f"{len(number.number)} digits: {bib_format.describe()} of"
                       f" this event's confident reads; P(right) {number.confidence:.2f}")  # fmt: skip
    return replace(number, status="unsure", reason=f"P(right) {number.confidence:.2f} < {settings.min_probability}")


def apply_corrections(decided: dict[str, list[BibNumber]], corrections: dict[str, list[tuple[str, str]]]
                      ) -> dict[str, list[BibNumber]]:  # fmt: skip
    """A person's word wins over every machine decision: a confirmed number is shown as sure, an added one is
    shown, a removed one hidden (kept, with the reason)."""
    out = {path: list(numbers) for path, numbers in decided.items()}
    for path, said in corrections.items():
        numbers = out.setdefault(path, [])
        for number, action in said:
            matching = [n for n in numbers if n.number == number]
            if action == "remove":
                numbers[:] = [replace(n, status="removed", reason="removed by a person") if n.number == number else n
                              for n in numbers]  # fmt: skip
            elif matching:  # confirmed, or added where the machine had it hidden
                numbers[:] = [n for n in numbers if n.number != number]
                numbers.append(replace(matching[0], confidence=1.0, status="confirmed", reason="confirmed by a person"))
            else:  # no box: a person gives the number, not its place
                numbers.append(BibNumber(number, 1.0, (0, 0, 0, 0), "corrected", "", "added by a person"))
        out[path] = _one_per_number(numbers)
    return out


def copies_of(runners: Sequence[StoredRunner], sha256: Mapping[str, str]) -> dict[str, str]:
    """Photos that are byte-for-byte copies of another (one file in two folders), each mapped to the first
    photo of its content: a copy's runners are no more evidence (three copies of one unsure read showed it)."""
    first: dict[str, str] = {}
    copies = {}
    for path in sorted({runner.path for runner in runners}):
        content = sha256.get(path)
        if content and content in first:
            copies[path] = first[content]
        elif content:
            first[content] = path
    return copies


def give_copies_their_decisions(decided: dict[str, list[BibNumber]], clusters: dict[int, int],
                                runners: Sequence[StoredRunner], copies: Mapping[str, str]) -> None:  # fmt: skip
    """Each copy gets its original's numbers and identity clusters, on its own runners (the same reads, in the same
    order)."""
    by_path: dict[str, list[StoredRunner]] = defaultdict(list)
    for runner in runners:
        by_path[runner.path].append(runner)
    for copy, original in copies.items():
        ids = {first.id: again.id for first, again in zip(by_path[original], by_path[copy], strict=False)}
        decided[copy] = [replace(number, runner=ids.get(number.runner)) for number in decided.get(original, [])]
        clusters.update({ids[runner]: cluster for runner, cluster in list(clusters.items()) if runner in ids})


DECIDE_ATTEMPTS = 5  # decisions made again, at most, while another run keeps saving photos


def redecide(index: PhotoIndex, settings: EventSettings = EventSettings()) -> EventReport:
    """Re-decide the whole event stored in `index` and save the decisions, in one transaction. Where another
    run (`tag` beside `correct`, say) saves photos meanwhile, decides again from them, up to DECIDE_ATTEMPTS
    times; then raises `StaleReadsError` (what that run saves, its own pass 2 decides)."""
    start = time.perf_counter()
    for attempt in range(1, DECIDE_ATTEMPTS + 1):
        generation = index.event_generation()
        runners = index.runner_reads()
        copies = copies_of(runners, {path: known[2] for path, known in index.known().items()})
        decided, clusters = decide_event([r for r in runners if r.path not in copies], index.start_list(), settings)
        give_copies_their_decisions(decided, clusters, runners, copies)
        decided = apply_corrections(decided, index.corrections())
        try:
            index.replace_decisions(decided, clusters, generation)
            break
        except StaleReadsError:  # a `tag` run beside this one saved photos meanwhile: decide again with them
            if attempt == DECIDE_ATTEMPTS:
                raise
            log.info("photos were saved while the event was being decided: deciding again")
    sizes = Counter(clusters.values())
    return EventReport(runners=len(runners), clusters=sum(size > 1 for size in sizes.values()),
                       statuses=Counter(n.status for numbers in decided.values() for n in numbers),
                       seconds=time.perf_counter() - start)  # fmt: skip
