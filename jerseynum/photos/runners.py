"""Finding runners in a race photo, each as the region of the photo where their bib can be.

Two anchors, merged: faces and person boxes. Faces come from mediapipe 0.10.21's full-range BlazeFace (weights
inside its wheel, Apache-2.0) on the whole photo and on n x n overlapping tiles (2 x 2 up to 1600 px, more for
larger photos), which finds the small faces of runners further back (../shared/FINDINGS.md: 97 % of the
development bibs have a face found this way, 85 % with the whole photo alone). A bib hangs below its runner's
face: on the development photos its centre lies 1.4-3.8 face heights below the face and within 0.7 face widths
of it horizontally, so the region searched is the face centre +- `side` face widths, from `top` to `bottom` face
heights below the face's bottom edge. Person boxes come from `jerseynum.detect` (SSDLite, ONNX): a runner whose
face is not found (a cap, a turned head, a hand) is read in the torso and legs of their box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from jerseynum.detect import PersonDetector
from jerseynum.native_logs import warm_up_quietly
from jerseynum.types import Box, PersonBox, iou


@dataclass(frozen=True)
class Runner:
    """A runner found in a photo: the face and the body box that anchor them (either may be missing: a turned head,
    a body the detector missed) and the region searched for their bib."""

    face: Box | None
    face_score: float
    region: Box
    body: Box | None = None
    body_score: float = 0.0


@dataclass(frozen=True)
class RunnerSettings:
    tiles: bool = True  # also look for faces in n x n overlapping tiles (small faces further back)
    tile_px: int = 800  # n: at least 2, and enough that a tile's long side is about this many pixels
    tile_overlap: float = 1.2  # a tile's side is this / n of the photo's (tiles overlap by a fifth)
    merge_iou: float = 0.3  # faces found twice (photo and tile) overlapping this much are one face
    min_face_px: int = 12  # smaller faces cannot come with a readable bib
    side: float = 1.6  # region half-width, in face widths from the face centre
    top: float = 0.2  # region top, in face heights below the face's bottom
    # Region bottom, in face heights below the face's bottom. A bib's lower edge reaches 4.9 there (a bib
    # centred 3.8 below the face on a runner leaning in); 6 leaves room for it (race-photo F1 0.850 -> 0.865).
    bottom: float = 6.0
    # Person boxes (jerseynum.detect) as a second anchor: a runner whose face is not found (a cap, a turned head,
    # a hand) is still read. On RBNR's development photos a bib's centre lies 0.29-0.90 of its body box's height
    # down (2nd-98th percentile) and a runner's face centre in the top quarter of it (90th percentile 0.26).
    bodies: bool = True
    face_in_body: float = 0.35  # a face whose centre lies in this top share of a body box is that body's
    body_top: float = 0.2  # a faceless runner's bib region, in body heights from the box's top ...
    body_bottom: float = 0.95  # ... to here
    min_body_px: int = 150  # shorter people are too far off for a readable bib (a bib is 4-8 % of a body)


def bib_region(face: Box, height: int, width: int, settings: RunnerSettings = RunnerSettings()) -> Box:
    """Where the bib of the runner with this face can be, clipped to the photo."""
    x1, y1, x2, y2 = face
    face_w, face_h = x2 - x1, y2 - y1
    centre = (x1 + x2) / 2
    return (
        max(0, int(centre - settings.side * face_w)),
        max(0, int(y2 + settings.top * face_h)),
        min(width, int(centre + settings.side * face_w + 1)),
        min(height, int(y2 + settings.bottom * face_h + 1)),
    )


class FaceRunnerFinder:
    """Runners anchored on faces found by mediapipe's full-range face detector."""

    def __init__(self, settings: RunnerSettings = RunnerSettings()) -> None:
        from mediapipe.python.solutions import face_detection

        self.settings = settings
        # model_selection=1: the full-range model (faces up to ~5 m away), what race photos need.
        self._detector = face_detection.FaceDetection(model_selection=1)
        warm_up_quietly(self._detector)

    def faces(self, photo: np.ndarray) -> list[tuple[Box, float]]:
        """Face boxes with their scores, in photo pixels, found on the photo and its tiles and merged."""
        height, width = photo.shape[:2]
        views = [(0, 0, width, height)]
        if self.settings.tiles:
            n = max(2, math.ceil(max(height, width) / self.settings.tile_px))
            tile_w = int(width * min(1.0, self.settings.tile_overlap / n))
            tile_h = int(height * min(1.0, self.settings.tile_overlap / n))
            xs = np.linspace(0, width - tile_w, n).astype(int)
            ys = np.linspace(0, height - tile_h, n).astype(int)
            views += [(x, y, x + tile_w, y + tile_h) for y in ys for x in xs]
        # A view narrower than the smallest face holds none; an empty one would break mediapipe's graph for good
        # (every later call fails: a 1-px-wide photo or selfie stopped all face search after it).
        views = [v for v in views if min(v[2] - v[0], v[3] - v[1]) >= self.settings.min_face_px]
        found: list[tuple[Box, float]] = []
        rgb = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB) if views else photo
        for vx1, vy1, vx2, vy2 in views:
            view = np.ascontiguousarray(rgb[vy1:vy2, vx1:vx2])
            result = self._detector.process(view)
            for detection in result.detections or []:
                box = detection.location_data.relative_bounding_box
                vw, vh = vx2 - vx1, vy2 - vy1
                x1 = max(0, int(vx1 + box.xmin * vw))
                y1 = max(0, int(vy1 + box.ymin * vh))
                x2 = min(width, int(vx1 + (box.xmin + box.width) * vw))
                y2 = min(height, int(vy1 + (box.ymin + box.height) * vh))
                if min(x2 - x1, y2 - y1) >= self.settings.min_face_px:
                    found.append(((x1, y1, x2, y2), float(detection.score[0])))
        # The same face seen in the photo and in one or more tiles: keep its best-scored box.
        merged: list[tuple[Box, float]] = []
        for box, score in sorted(found, key=lambda item: -item[1]):
            if all(iou(box, kept) < self.settings.merge_iou for kept, _ in merged):
                merged.append((box, score))
        return merged

    def find(self, photo: np.ndarray) -> list[Runner]:
        return face_runners(self.faces(photo), *photo.shape[:2], self.settings)

    def close(self) -> None:
        self._detector.close()


def face_runners(faces: list[tuple[Box, float]], height: int, width: int, settings: RunnerSettings) -> list[Runner]:
    """A runner for each of the (face, score) whose bib region lies in the photo: a face at the photo's bottom
    edge has none."""
    runners = []
    for face, score in faces:
        region = bib_region(face, height, width, settings)
        if region[2] - region[0] >= 8 and region[3] - region[1] >= 8:
            runners.append(Runner(face, score, region))
    return runners


def body_region(body: Box, height: int, width: int, settings: RunnerSettings = RunnerSettings()) -> Box:
    """Where the bib of a runner found by their body alone can be, clipped to the photo."""
    x1, y1, x2, y2 = body
    return (max(0, x1), max(0, int(y1 + settings.body_top * (y2 - y1))), min(width, x2),
            min(height, int(y1 + settings.body_bottom * (y2 - y1)) + 1))  # fmt: skip


def body_of(face: Box, bodies: list[PersonBox], taken: set[int], settings: RunnerSettings) -> int | None:
    """The body (its position in `bodies`) whose top part holds this face: the smallest one not taken yet.

    The face must also sit over the body: the body's centre line within the face's bib region (`settings.side`
    face widths of the face's centre). A runner behind another shows a small face inside the front runner's box,
    off its centre; taken for the front runner's, it would leave the front runner's bib unsearched when their
    own face is not found (a cap, arms up: RBNR's 2103, 2.8 face widths off). The few real pairs further off than
    that reach (1.6-1.7 face widths on RBNR and misc) become a face's runner and a faceless body's, read apart."""
    centre_x, centre_y = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    reach = settings.side * (face[2] - face[0])
    holding = [k for k, person in enumerate(bodies) if k not in taken and
               person.box[0] <= centre_x <= person.box[2] and
               abs(centre_x - (person.box[0] + person.box[2]) / 2) <= reach and
               person.box[1] <= centre_y <= person.box[1] + settings.face_in_body * (person.box[3] - person.box[1])]  # fmt: skip
    return min(holding, key=lambda k: (bodies[k].box[2] - bodies[k].box[0]) * (bodies[k].box[3] - bodies[k].box[1]),
               default=None)  # fmt: skip


class RunnerFinder:
    """Runners anchored on faces (`FaceRunnerFinder`) and, with `settings.bodies`, on the person detector's boxes:
    a face and the body it sits on are one runner, whose bib region hangs below the face; a body with no face
    found is a runner too, its bib region the body's torso and legs."""

    def __init__(self, settings: RunnerSettings = RunnerSettings(), threads: int = 0,
                 face_finder: FaceRunnerFinder | None = None, people: PersonDetector | None = None) -> None:  # fmt: skip
        """`face_finder` and `people` replace the default face finder and person detector."""
        self.settings = settings
        self.face_finder = face_finder or FaceRunnerFinder(settings)
        self.people = people
        if people is None and settings.bodies:
            from jerseynum.detect import person_detector

            self.people = person_detector(threads=threads)

    def faces(self, photo: np.ndarray) -> list[tuple[Box, float]]:
        return self.face_finder.faces(photo)

    def find(self, photo: np.ndarray) -> list[Runner]:
        height, width = photo.shape[:2]
        bodies = [p for p in self.people.detect([photo])[0] if p.box[3] - p.box[1] >= self.settings.min_body_px] \
            if self.people else []  # fmt: skip
        taken: set[int] = set()
        runners = []
        for runner in face_runners(self.face_finder.faces(photo), height, width, self.settings):
            k = body_of(runner.face, bodies, taken, self.settings)
            if k is not None:
                taken.add(k)
                runner = replace(runner, body=bodies[k].box, body_score=bodies[k].score)
            runners.append(runner)
        for k, body in enumerate(bodies):
            if k not in taken:
                runners.append(Runner(None, 0.0, body_region(body.box, height, width, self.settings), body.box,
                                      body.score))  # fmt: skip
        return runners
