"""Pose: body keypoints of the person in a crop, as `Keypoints` with COCO names.

Backends:
- `mediapipe` (default): BlazePose from mediapipe 0.10.21, whose weights ship inside its wheel.
- `mmpose`: any top-down mmpose model, for a user who has its config and checkpoint files locally. Never
  required, never downloading: it is imported only when selected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from jerseynum.native_logs import warm_up_quietly
from jerseynum.types import Keypoints

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


class PoseEstimator(Protocol):
    name: str

    def estimate(self, images: list[np.ndarray]) -> list[Keypoints | None]:
        """Keypoints of the main person in each BGR image, None where no person was found."""
        ...


class MediapipePose:
    name = "mediapipe"

    def __init__(self, model_complexity: int = 1) -> None:
        from mediapipe.python.solutions import pose as mp_pose

        self._landmark_ids = {name: mp_pose.PoseLandmark[name.upper()].value for name in COCO_KEYPOINTS}
        self._pose = mp_pose.Pose(static_image_mode=True, model_complexity=model_complexity)
        warm_up_quietly(self._pose)

    def estimate(self, images: list[np.ndarray]) -> list[Keypoints | None]:
        # BlazePose has no batch API; each crop is one call (~30 ms on this CPU).
        return [self._estimate_one(image) for image in images]

    def _estimate_one(self, image: np.ndarray) -> Keypoints | None:
        result = self._pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        if result.pose_landmarks is None:
            return None
        return keypoints_from_mediapipe(result.pose_landmarks.landmark, self._landmark_ids, image.shape)

    def close(self) -> None:
        self._pose.close()


def keypoints_from_mediapipe(landmarks, landmark_ids: dict[str, int], shape: tuple[int, ...]) -> Keypoints:
    """BlazePose landmarks (normalised x, y and a visibility) -> Keypoints in pixels."""
    height, width = shape[:2]
    points = {}
    for name, index in landmark_ids.items():
        landmark = landmarks[index]
        points[name] = (landmark.x * width, landmark.y * height, float(landmark.visibility))
    return Keypoints(points)


class MMPose:
    """A top-down mmpose model (COCO-17 keypoints) given by local config and checkpoint files."""

    name = "mmpose"

    def __init__(self, config: Path, checkpoint: Path, device: str = "cpu") -> None:
        for path in (config, checkpoint):
            if not Path(path).is_file():
                raise FileNotFoundError(f"mmpose backend: no such file {path} (it never downloads weights)")
        try:
            from mmpose.apis import inference_topdown, init_model
        except ImportError as error:
            raise ImportError("the mmpose backend needs mmpose and mmcv installed (see README)") from error
        self._inference = inference_topdown
        self._model = init_model(str(config), str(checkpoint), device=device)

    def estimate(self, images: list[np.ndarray]) -> list[Keypoints | None]:
        results = []
        for image in images:
            height, width = image.shape[:2]
            samples = self._inference(self._model, image, bboxes=np.array([[0, 0, width, height]]))
            results.append(keypoints_from_mmpose(samples[0].pred_instances) if samples else None)
        return results


def keypoints_from_mmpose(instances) -> Keypoints:
    xy = np.asarray(instances.keypoints)[0]
    scores = np.asarray(instances.keypoint_scores)[0]
    return Keypoints({name: (float(x), float(y), float(s)) for name, (x, y), s in zip(COCO_KEYPOINTS, xy, scores)})


POSE_BACKENDS = {"mediapipe": MediapipePose, "mmpose": MMPose}


def pose_estimator(name: str, **options) -> PoseEstimator | None:
    """The named backend, or None for "none" (every frame then takes the torso fallback)."""
    if name == "none":
        return None
    if name not in POSE_BACKENDS:
        raise ValueError(f"unknown pose backend {name!r}; choose from {sorted(POSE_BACKENDS)} or 'none'")
    return POSE_BACKENDS[name](**options)

