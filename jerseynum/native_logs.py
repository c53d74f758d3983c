"""mediapipe's C++ graph writes a few absl and TensorFlow Lite lines to stderr on its first run ("Created
TensorFlow Lite XNNPACK delegate", "Feedback manager requires a model with a single signature"): harmless, but
they bury the progress bar and the results, and neither GLOG_minloglevel nor TF_CPP_MIN_LOG_LEVEL reaches
them. The backends warm up once with file descriptor 2 pointed at /dev/null; later runs log as usual."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def warm_up_quietly(solution) -> None:
    """Run a mediapipe solution (pose, face detection) once on a blank image with its set-up lines muted."""
    with native_stderr_muted():
        solution.process(np.zeros((64, 64, 3), np.uint8))


@contextmanager
def native_stderr_muted() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (native code writes there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
