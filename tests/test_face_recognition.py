"""Face recognition: encodings (dlib's ResNet on numpy), distances and match confidence, enrolment
photos, the clustering they feed, and dlib's stored detector. Real photos (sample_data, and the
development faces at ../shared/devset/faces, skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scanner.analysis.clustering import average_linkage
from scanner.analysis.faces.dlib_models import detector_cache_path, face_api, stored_frontal_detector
from scanner.analysis.faces.quality import grey_levels
from scanner.analysis.faces.recognition import (
    MATCH_TOLERANCE,
    encode_face_image,
    encode_faces,
    face_distance,
    face_match_confidence,
)
from scanner.analysis.faces.settings import DEFAULT_CLUSTER_TOLERANCE
from scanner.media.images import load_image
from scanner.models import MediaError
from tests.helpers import SAMPLE_DATA


@pytest.fixture(scope="module")
def photos(devset: Path) -> Path:
    """The development faces (../shared/devset/faces)."""
    return devset / "faces"


def test_encode_face_image_errors_and_no_face(tmp_path):
    text = tmp_path / "face.jpg"
    text.write_text("not an image")
    with pytest.raises(MediaError):
        encode_face_image(text)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    assert encode_face_image(blank).shape == (0, 128)


def test_numpy_encoder_equals_dlibs_own_on_real_faces(photos):
    """The encoder evaluated on numpy gives dlib's encodings (float rounding apart), batched or not."""
    api = face_api()
    faces = []
    for name in ("two_people.jpg", "obama-240p.jpg", "knn_examples/test/kit_with_rose.jpg"):
        image = np.asarray(Image.open(photos / name).convert("RGB"))
        faces += [(image, box) for box in api.face_locations(image, 1)]
    assert len(faces) >= 5
    reference = np.array([api.face_encodings(image, [box], 1, "small")[0] for image, box in faces])
    batched = encode_faces(faces)
    assert batched.shape == (len(faces), 128)
    assert np.abs(batched - reference).max() < 1e-4
    assert np.abs(encode_faces(faces[:1])[0] - reference[0]).max() < 1e-4
    assert encode_faces([]).shape == (0, 128)


def test_match_confidence_is_calibrated_and_monotone():
    values = [face_match_confidence(d) for d in (0.2, 0.4, 0.5, MATCH_TOLERANCE, 0.7, 0.9)]
    assert values == sorted(values, reverse=True)
    assert values[0] > 0.99 and values[-1] < 0.01
    assert 0.05 < face_match_confidence(MATCH_TOLERANCE) < 0.5  # the rule's edge is not a sure match


def test_several_reference_photos_match_real_photos(photos):
    """Enrol two photos per subject; unseen photos match their subject, a stranger nobody."""
    refs = {
        "obama": [photos / "knn_examples/train/obama/obama.jpg", photos / "knn_examples/train/obama/obama2.jpg"],
        "biden": [photos / "knn_examples/train/biden/biden.jpg", photos / "knn_examples/train/biden/biden2.jpg"],
    }
    enrolled = {who: np.concatenate([encode_face_image(p)[:1] for p in paths]) for who, paths in refs.items()}

    def nearest(path):
        enc = encode_face_image(path)[0]
        who, d = min(((w, float(face_distance(e, enc).min())) for w, e in enrolled.items()), key=lambda p: p[1])
        return (who if d < MATCH_TOLERANCE else None), face_match_confidence(d)

    who, confidence = nearest(photos / "knn_examples/test/obama1.jpg")
    assert who == "obama" and confidence > 0.8
    who, confidence = nearest(photos / "lin-manuel-miranda.png")
    assert who is None and confidence < 0.1


def test_encoding_clusters_are_scikit_learns_average_linkage_partition():
    """`clustering.average_linkage` (SciPy, cheaper to import in every worker) groups encodings exactly as
    scikit-learn's AgglomerativeClustering with average linkage and the same threshold did."""
    from sklearn.cluster import AgglomerativeClustering  # only this test needs scikit-learn


    rng = np.random.default_rng(7)
    for trial in range(40):
        people = rng.integers(1, 8)
        # Distances around the threshold: people 0.3-0.8 apart, their faces 0.15-0.4 from each other.
        centres = rng.normal(0.0, rng.uniform(0.02, 0.05), (people, 128))
        vectors = centres[rng.integers(0, people, rng.integers(2, 60))]
        vectors = vectors + rng.normal(0.0, rng.uniform(0.01, 0.025), vectors.shape)
        ours = average_linkage(vectors, DEFAULT_CLUSTER_TOLERANCE)
        theirs = AgglomerativeClustering(n_clusters=None, distance_threshold=DEFAULT_CLUSTER_TOLERANCE,
                                         linkage="average", metric="euclidean").fit_predict(vectors)
        same_ours = ours[:, None] == ours[None, :]
        same_theirs = theirs[:, None] == theirs[None, :]
        assert (same_ours == same_theirs).all(), trial


def test_the_stored_frontal_detector_is_dlibs_own(tmp_path, monkeypatch):
    """The detector workers load from the cache folder finds the same faces, with the same scores,
    as the one dlib decodes from its own copy; an unreadable stored copy is rebuilt."""
    import dlib  # loaded only by the tests that call it directly


    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = detector_cache_path()
    assert path is not None and path.parent == tmp_path / "likeness"
    path.parent.mkdir()
    path.write_bytes(b"not a detector")
    with stored_frontal_detector():
        rebuilt = dlib.get_frontal_face_detector()
    assert path.stat().st_size > 100_000  # the rebuilt detector was saved over the bad copy
    with stored_frontal_detector():
        stored = dlib.get_frontal_face_detector()
    assert dlib.get_frontal_face_detector.__name__ == "get_frontal_face_detector"  # dlib's own again
    own = dlib.get_frontal_face_detector()
    photos = [SAMPLE_DATA / "enrol" / "obama.jpg", SAMPLE_DATA / "recordings" / "team_photo.jpg"]
    found = 0
    for photo in photos:
        grey = grey_levels(load_image(photo))
        for upsample in (0, 1):
            # A negative threshold also compares the weak candidates the detector turns down.
            expected = own.run(grey, upsample, -0.5)
            for detector in (stored, rebuilt):
                got = detector.run(grey, upsample, -0.5)
                assert [(r.left(), r.top(), r.right(), r.bottom()) for r in got[0]] == [
                    (r.left(), r.top(), r.right(), r.bottom()) for r in expected[0]]
                assert list(got[1]) == list(expected[1]) and list(got[2]) == list(expected[2])
            found += len(expected[0])
    assert found >= 6
