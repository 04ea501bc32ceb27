"""Resolve people: tie face clusters and speakers to enrolled subjects, link unknowns across files.

Within a recording, faces and voices are grouped by the face and voice stages. Here those groups
become people for the whole scan: a group that matches an enrolled subject becomes that subject
(face and voice of the same subject are one person); the rest are linked across recordings by
similarity and numbered `unknown-1`, `unknown-2`, ... in order of first appearance, so the same
inputs always give the same ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import AgglomerativeClustering

from scanner.models import (
    FaceSighting,
    IdentityMatch,
    Modality,
    Person,
    RecordingAnalysis,
    RecordingStatus,
    VoiceSighting,
)


@dataclass
class EnrolledSubject:
    """Reference biometrics of one subject, computed from the consent file's enrolment media."""

    subject_id: str
    name: str
    face_encodings: np.ndarray = field(default_factory=lambda: np.zeros((0, 128)))
    voiceprints: np.ndarray | None = None  # shape (m, d) or None


@dataclass(frozen=True)
class ResolverSettings:
    """Thresholds for matching and linking.

    face_tolerance: face encoding distance under which a face cluster is the enrolled subject
        (dlib reports 99.38% on LFW at 0.6; real footage is harder, so the default is stricter).
    voice_threshold: cosine similarity of voiceprints above which a speaker is the enrolled subject.
    face_link_tolerance / voice_link_threshold: the same for linking unknowns across recordings.
    """

    face_tolerance: float = 0.55
    face_link_tolerance: float = 0.55
    voice_threshold: float = 0.75
    voice_link_threshold: float = 0.75


def resolve_people(
    recordings: list[RecordingAnalysis],
    subjects: list[EnrolledSubject],
    settings: ResolverSettings = ResolverSettings(),
) -> list[Person]:
    """Group every face cluster and speaker of the scan into people, matched subjects first."""
    faces = [
        FaceSighting(rec.path, cluster)
        for rec in recordings
        if rec.status is RecordingStatus.OK and rec.faces
        for cluster in rec.faces.clusters
    ]
    voices = [
        VoiceSighting(rec.path, speaker)
        for rec in recordings
        if rec.status is RecordingStatus.OK and rec.voices
        for speaker in rec.voices.speakers
    ]
    order = {rec.path: i for i, rec in enumerate(recordings)}

    by_subject: dict[str, Person] = {}
    names = {s.subject_id: s.name for s in subjects}

    def person_for(match: IdentityMatch) -> Person:
        person = by_subject.get(match.subject_id)
        if person is None:
            person = Person(match.subject_id, match.subject_id, names.get(match.subject_id), match)
            by_subject[match.subject_id] = person
        elif person.match is None or match.confidence > person.match.confidence:
            person.match = match
        return person

    unknown_faces: list[FaceSighting] = []
    for sighting in faces:
        match = match_face(sighting.cluster.encodings, subjects, settings.face_tolerance)
        if match:
            person_for(match).faces.append(sighting)
        else:
            unknown_faces.append(sighting)

    unknown_voices: list[VoiceSighting] = []
    for sighting in voices:
        match = match_voice(sighting.speaker.voiceprint, subjects, settings.voice_threshold)
        if match:
            person_for(match).voices.append(sighting)
        else:
            unknown_voices.append(sighting)

    face_groups = _link(
        [s.cluster.encodings.mean(axis=0) for s in unknown_faces], "euclidean", settings.face_link_tolerance
    )
    voice_groups = _link(
        [s.speaker.voiceprint for s in unknown_voices], "cosine", 1.0 - settings.voice_link_threshold
    )
    unknown_people: list[tuple[tuple[int, float], Person]] = []
    for group in face_groups:
        members = [unknown_faces[i] for i in group]
        first = min((order[m.recording], m.cluster.time_ranges[0].start if m.cluster.time_ranges else 0.0)
                    for m in members)
        unknown_people.append((first, Person("", None, None, None, faces=members)))
    for group in voice_groups:
        members = [unknown_voices[i] for i in group]
        first = min((order[m.recording], m.speaker.turns[0].start if m.speaker.turns else 0.0) for m in members)
        unknown_people.append((first, Person("", None, None, None, voices=members)))
    unknown_people.sort(key=lambda item: item[0])
    for n, (_, person) in enumerate(unknown_people, start=1):
        person.person_id = f"unknown-{n}"

    subject_order = {s.subject_id: i for i, s in enumerate(subjects)}
    matched = sorted(by_subject.values(), key=lambda p: subject_order.get(p.subject_id, 0))
    return matched + [p for _, p in unknown_people]


def match_face(encodings: np.ndarray, subjects: list[EnrolledSubject], tolerance: float) -> IdentityMatch | None:
    """The enrolled subject whose reference photos are closest to these encodings, if close enough.

    The cluster's distance to a subject is the median over its encodings of the distance to the
    nearest reference photo, so one odd frame neither makes nor breaks a match.
    """
    best: tuple[float, str] | None = None
    for subject in subjects:
        if len(subject.face_encodings) == 0 or len(encodings) == 0:
            continue
        dists = np.linalg.norm(encodings[:, None, :] - subject.face_encodings[None, :, :], axis=2)
        distance = float(np.median(dists.min(axis=1)))
        if best is None or distance < best[0]:
            best = (distance, subject.subject_id)
    if best is None or best[0] >= tolerance:
        return None
    return IdentityMatch(Modality.FACE, best[1], round(best[0], 4), _confidence(tolerance - best[0], 0.04))


def match_voice(voiceprint: np.ndarray, subjects: list[EnrolledSubject], threshold: float) -> IdentityMatch | None:
    """The enrolled subject whose voice samples sound most like this voiceprint, if similar enough."""
    best: tuple[float, str] | None = None
    for subject in subjects:
        if subject.voiceprints is None or len(subject.voiceprints) == 0:
            continue
        similarity = float(max(_cosine(voiceprint, ref) for ref in subject.voiceprints))
        if best is None or similarity > best[0]:
            best = (similarity, subject.subject_id)
    if best is None or best[0] < threshold:
        return None
    return IdentityMatch(Modality.VOICE, best[1], round(1.0 - best[0], 4), _confidence(best[0] - threshold, 0.04))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / denom) if denom else 0.0


def _confidence(margin: float, scale: float) -> float:
    """A logistic map from the margin past the threshold to 0..1 (0.5 at the threshold).

    Not yet calibrated on labelled data; it orders matches by strength.
    """
    return round(1.0 / (1.0 + math.exp(-margin / scale)), 4)


def _link(vectors: list[np.ndarray], metric: str, threshold: float) -> list[list[int]]:
    """Group vectors whose average-linkage distance stays under `threshold`."""
    if not vectors:
        return []
    if len(vectors) == 1:
        return [[0]]
    labels = AgglomerativeClustering(
        n_clusters=None, metric=metric, linkage="average", distance_threshold=threshold
    ).fit_predict(np.vstack(vectors))
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return list(groups.values())
