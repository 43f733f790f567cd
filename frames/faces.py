"""dlib's face models, loaded once per process from checked files: detector, 5-point landmarks, identity.

Both the fingerprint's face channel (`provenance.faces`) and the generator's swaps
(`generator.landmarks`) detect faces, place their 5 landmarks and take dlib's 128-d identity
embedding; they must use the same, undamaged model files. The files come from the
`face-recognition-models` package, found by its location (importing it needs pkg_resources),
nothing downloaded. Only the CC0 models are used: the HOG frontal detector (built into dlib), the
5-point predictor and the ResNet recogniser. The 68-point predictor in the same package is never
loaded: its training data (iBUG 300-W) forbids commercial use. Each file is checked against its
SHA-256 when loaded, so a damaged file stops start-up instead of skewing every face.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNISER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
MODEL_SHA256 = {
    PREDICTOR_FILE: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    RECOGNISER_FILE: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}


class FaceModelError(RuntimeError):
    """A face model file is missing or damaged: nothing that needs faces may run without it."""


def model_dir() -> Path:
    """Where `face-recognition-models` keeps dlib's model files (without importing it)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelError("face models missing: install the face-recognition-models package")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class FaceModels:
    """dlib's detector, 5-point predictor and ResNet recogniser, each model file checked first.

    `version` names the pair of files (16 hex digits of a digest of their SHA-256s): a face block
    made with other models is not comparable.
    """

    def __init__(self, directory: Path | None = None) -> None:
        import dlib

        directory = directory or model_dir()
        paths = {}
        digest = hashlib.sha256()
        for name, expected in MODEL_SHA256.items():
            path = directory / name
            try:
                actual = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as exc:
                raise FaceModelError(f"face model {path} cannot be read: {exc.strerror}") from None
            if actual != expected:
                raise FaceModelError(
                    f"face model {path} is damaged (SHA-256 {actual[:12]}…, not {expected[:12]}…)"
                )
            paths[name] = str(path)
            digest.update(bytes.fromhex(expected))
        self.version = digest.hexdigest()[:16]
        self.dlib: Any = dlib
        self.detector: Any = dlib.get_frontal_face_detector()
        self.predictor: Any = dlib.shape_predictor(paths[PREDICTOR_FILE])
        self.recogniser: Any = dlib.face_recognition_model_v1(paths[RECOGNISER_FILE])

    def rectangle(self, left: float, top: float, right: float, bottom: float) -> Any:
        """A dlib rectangle with corners rounded to whole pixels."""
        return self.dlib.rectangle(round(left), round(top), round(right), round(bottom))

    def shape(self, rgb: np.ndarray, rect: Any) -> Any:
        """dlib's 5-point landmarks of the face in `rect` of an RGB uint8 image."""
        return self.predictor(rgb, rect)

    def embedding(self, rgb: np.ndarray, shape: Any) -> np.ndarray:
        """dlib's 128-d identity embedding (float64, as dlib computes it) of the face at `shape`.

        Distance under 0.6: probably the same person.
        """
        return np.asarray(self.recogniser.compute_face_descriptor(rgb, shape), dtype=np.float64)


def landmark_points(shape: Any) -> np.ndarray:
    """(5, 2) float64 pixel coordinates of a dlib landmark `shape`."""
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


@cache
def face_models() -> FaceModels:
    """The process's checked models (loading them costs about a second)."""
    return FaceModels()
