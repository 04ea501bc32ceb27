"""Who a face is: 128-d encodings of faces (dlib's ResNet) and how to compare them.

Encodings are those of face_recognition (`face_encodings(image, [box], 1, "small")`); two faces
are the same person below `MATCH_TOLERANCE` (calibration in bench/faces.md, "Identification on the
development faces").
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from scanner.analysis.faces.dlib_models import dlib_rectangle, face_api
from scanner.analysis.faces.encoder import CHIP_PADDING, CHIP_SIZE, default_encoder
from scanner.analysis.faces.quality import grey_levels
from scanner.media.images import load_image

#: Enrolment match rule: a face is the enrolled subject whose nearest reference photo is closer than
#: this; otherwise nobody (face_recognition's own value, in the gap measured in bench/faces.md).
MATCH_TOLERANCE = 0.6
#: Coefficients of `face_match_confidence`: P(same) = 1 / (1 + exp(-(b + a * distance))), fitted by
#: `bench/faces.py --only identify` (P = 0.5 at 0.57).
MATCH_LOGIT_SLOPE = -19.6
MATCH_LOGIT_INTERCEPT = 11.1


def face_match_confidence(distance: float) -> float:
    """Probability (0-1) that two faces at this encoding distance are the same person.

    Logistic regression (`MATCH_LOGIT_SLOPE`, `MATCH_LOGIT_INTERCEPT`) on the distances between
    every enrolment photo and every probe face of the development faces, labelled same or
    different person.
    """
    z = MATCH_LOGIT_INTERCEPT + MATCH_LOGIT_SLOPE * float(distance)
    return float(1.0 / (1.0 + math.exp(-z)))


def face_distance(known: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Euclidean distances (n,) between each row of `known` (n x 128) and one `probe` encoding.

    Lower is more similar; face_recognition's own definition, computed here without loading dlib
    and its models (2 s in a rescan).
    """
    known = np.asarray(known, dtype=np.float64).reshape(-1, 128)
    return np.linalg.norm(known - np.asarray(probe, dtype=np.float64).reshape(128), axis=1)


def encode_face_image(path: Path, max_width: int = 1600, upsample: int = 1) -> np.ndarray:
    """All face encodings in an enrolment photo, shape (n_faces, 128), largest face first.

    Parameters
    ----------
    path : Path
        A still image (content-detected; EXIF orientation applied).
    max_width : int, default=1600
        Larger photos are downscaled first: detection time grows with pixels, and faces in
        enrolment photos are large.
    upsample : int, default=1
        HOG upsampling passes (1 finds faces down to ~40 px).

    Raises
    ------
    MediaError
        The file is not a readable image.
    """
    api = face_api()
    rgb = load_image(Path(path))
    height, width = rgb.shape[:2]
    if max_width and width > max_width:
        new_h = max(1, int(round(height * max_width / width)))
        rgb = np.asarray(Image.fromarray(rgb).resize((max_width, new_h), Image.Resampling.BILINEAR))
    boxes = api.face_locations(grey_levels(rgb), upsample, "hog")  # see FaceSearch.detector_input
    boxes.sort(key=lambda b: -(b[1] - b[3]))
    return encode_faces([(rgb, box) for box in boxes])


def encode_faces(faces: list[tuple[np.ndarray, tuple[int, int, int, int]]]) -> np.ndarray:
    """128-d encodings (n, 128) of faces given as (RGB image, (top, right, bottom, left) box) pairs.

    The same encodings as face_recognition's `face_encodings(image, [box], 1, "small")`: the
    5-landmark chip that dlib's ResNet expects, no jitter. The network runs on numpy
    (`scanner.analysis.faces.encoder`, batched over all faces); dlib's own
    `compute_face_descriptor` only if the model file is not the expected one.
    """
    if not faces:
        return np.zeros((0, 128), dtype=np.float64)
    import dlib  # deferred with every dlib use: see scanner.analysis.faces.dlib_models

    api = face_api()
    shapes = [api.pose_predictor_5_point(image, dlib_rectangle(box)) for image, box in faces]
    encoder = default_encoder()
    if encoder is None:
        return np.asarray(
            [api.face_encoder.compute_face_descriptor(image, shape, 1) for (image, _), shape in zip(faces, shapes)],
            dtype=np.float64,
        ).reshape(-1, 128)
    chips = [
        dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        for (image, _), shape in zip(faces, shapes)
    ]
    return encoder.encode_chips(np.stack(chips))
