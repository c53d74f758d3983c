import subprocess
import sys

# A fresh interpreter, so that mediapipe's graph runs for the first time in it (its set-up lines come then).
BUILD_BOTH_AND_WRITE = """
import os
from jerseynum.photos.runners import FaceRunnerFinder
from jerseynum.stages.pose import MediapipePose
MediapipePose()
FaceRunnerFinder()
os.write(2, b"after\\n")
"""


def test_mediapipe_backends_start_silently_and_leave_stderr_working():
    command = [sys.executable, "-c", BUILD_BOTH_AND_WRITE]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "after\n"
