"""Runners anchored on faces and on person boxes (photos/runners.py `RunnerFinder`): a face and the body it sits
on are one runner; a body without a face found is a runner too, read in its torso and legs."""

from __future__ import annotations

import numpy as np

from jerseynum.photos.runners import FaceRunnerFinder, RunnerFinder, RunnerSettings, bib_region, body_region
from jerseynum.types import PersonBox
from tests.test_identity import RED, draw_runner, photo_with

PHOTO = np.zeros((600, 800, 3), np.uint8)


class Faces:
    def __init__(self, faces):
        self.found = faces

    def faces(self, photo):
        return self.found


class People:
    def __init__(self, people):
        self.found = people

    def detect(self, images):
        return [self.found for _ in images]


def test_a_face_on_a_body_is_one_runner_and_a_faceless_body_is_another():
    face = ((100, 50, 130, 85), 0.9)  # in the top of body A
    body_a = PersonBox((80, 40, 160, 400), 0.95)
    body_b = PersonBox((400, 60, 480, 420), 0.8)  # turned away: no face found
    finder = RunnerFinder(face_finder=Faces([face]), people=People([body_a, body_b]))
    first, second = finder.find(PHOTO)
    assert (first.face, first.body, first.region) == (face[0], body_a.box, bib_region(face[0], 600, 800))
    assert (second.face, second.body, second.body_score) == (None, body_b.box, 0.8)
    assert second.region == body_region(body_b.box, 600, 800) == (400, 132, 480, 403)


def test_a_face_goes_to_the_smallest_body_holding_it_in_its_top_and_each_body_to_one_face():
    near = PersonBox((90, 40, 150, 300), 0.9)
    around = PersonBox((60, 30, 170, 560), 0.7)  # a larger box around two runners
    low = PersonBox((95, 0, 140, 160), 0.6)  # holds the face below its top third: not its body
    faces = [((100, 50, 130, 85), 0.9), ((105, 55, 128, 80), 0.5)]  # the second: a face found twice, offset
    runners = RunnerFinder(face_finder=Faces(faces), people=People([low, near, around])).find(PHOTO)
    assert [r.body for r in runners[:2]] == [near.box, around.box]
    assert [(r.face, r.body) for r in runners[2:]] == [(None, low.box)]


def test_a_face_off_a_bodys_centre_is_someone_elses_and_the_body_is_read_on_its_own():
    """The runner in front, arms up and face unseen, and a smaller face behind him inside his box."""
    behind = ((297, 344, 321, 367), 0.8)  # 2.8 face widths right of the box's centre
    front = PersonBox((117, 221, 365, 638), 0.9)
    first, second = RunnerFinder(face_finder=Faces([behind]), people=People([front])).find(PHOTO)
    assert (first.face, first.body) == (behind[0], None)
    assert (second.face, second.body, second.region) == (None, front.box, body_region(front.box, 600, 800))


def test_short_bodies_and_no_person_detector_leave_faces_alone():
    face = ((100, 50, 130, 85), 0.9)
    tiny = PersonBox((500, 500, 520, 560), 0.9)  # 60 px tall: too far off for a readable bib
    assert [r.face for r in RunnerFinder(face_finder=Faces([face]), people=People([tiny])).find(PHOTO)] == [face[0]]
    faces_only = RunnerFinder(RunnerSettings(bodies=False), face_finder=Faces([face]))
    assert faces_only.people is None and [r.body for r in faces_only.find(PHOTO)] == [None]


def test_a_photo_too_thin_for_a_face_has_none_and_face_search_goes_on_after_it():
    photo = photo_with()
    draw_runner(photo, 320, 150, 100, RED)
    finder = FaceRunnerFinder()
    before = finder.faces(photo)
    # 1 px wide, 1 x 1, 5 px high: views narrower than the smallest face are not searched (mediapipe's graph,
    # given an empty view, failed on every later photo)
    for thin in (np.full((400, 1, 3), 128, np.uint8), np.zeros((1, 1, 3), np.uint8), np.zeros((5, 900, 3), np.uint8)):
        assert finder.faces(thin) == []
    assert finder.faces(photo) == before
    finder.close()
