"""Resolve people: tie face clusters and speakers to enrolled subjects, link unknowns across files.

Within a recording, faces and voices are grouped by the face and voice stages. Here those groups
become people for the whole scan: a group that matches an enrolled subject becomes that subject
(face and voice of the same subject are one person); the rest are linked across recordings by
similarity and numbered `unknown-1`, `unknown-2`, ... in order of first appearance, so the same
inputs always give the same ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from scanner.analysis.clustering import average_linkage, label_groups
from scanner.analysis.faces.recognition import MATCH_TOLERANCE, face_distance, face_match_confidence
from scanner.analysis.faces.settings import DEFAULT_CLUSTER_TOLERANCE
from scanner.analysis.voices.voiceprints import NARROWBAND_HZ, VoiceMatchSettings, resolve_voices
from scanner.models import (
    FaceSighting,
    IdentityMatch,
    Modality,
    Person,
    RecordingAnalysis,
    RecordingStatus,
    VoiceSighting,
)
from scanner.source_digest import source_digest


@dataclass
class EnrolledSubject:
    """Reference biometrics of one subject, computed from the consent file's enrolment media."""

    subject_id: str
    name: str
    face_encodings: np.ndarray = field(default_factory=lambda: np.zeros((0, 128)))
    voiceprints: np.ndarray | None = None  # shape (m, d) or None


@dataclass(frozen=True)
class ResolverSettings:
    """Thresholds for matching and linking (defaults from the face and voice stages' measurements).

    face_tolerance: face encoding distance under which a face cluster is the enrolled subject
        (face_recognition's 0.6; the distances it separates: bench/faces.md, "Identification on
        the development faces").
    face_link_tolerance: distance under which unknown faces in different recordings are linked
        (the within-recording clustering tolerance).
    voice: when a speaker is an enrolled subject, and when unknown speakers of different recordings
        are one voice: cosine thresholds of GE2E voiceprints that depend on how much speech each
        holds (see `scanner.analysis.voices.voiceprints.VoiceMatchSettings`, measured on real speech).
    """

    face_tolerance: float = MATCH_TOLERANCE
    face_link_tolerance: float = DEFAULT_CLUSTER_TOLERANCE
    voice: VoiceMatchSettings = VoiceMatchSettings()


def resolve_people(
    recordings: list[RecordingAnalysis],
    subjects: list[EnrolledSubject],
    settings: ResolverSettings = ResolverSettings(),
) -> list[Person]:
    """Group every face cluster and speaker of the scan into people, matched subjects first.

    Within a recording, a face and a voice linked by lip movement are one person: a voice with no
    enrolment inherits the subject its face matched, and the other way round. When the two match
    different subjects the link is not trusted and both stay separate.
    """
    faces: list[FaceSighting] = []
    voices: list[VoiceSighting] = []
    links: list[tuple[int, int]] = []  # (face index, voice index)
    for rec in recordings:
        if rec.status is RecordingStatus.UNREADABLE:
            continue
        face_at = {}
        for cluster in rec.faces.clusters if rec.faces else []:
            face_at[cluster.cluster_id] = len(faces)
            faces.append(FaceSighting(rec.path, cluster))
        voice_at = {}
        for speaker in rec.voices.speakers if rec.voices else []:
            voice_at[speaker.speaker_id] = len(voices)
            voices.append(VoiceSighting(rec.path, speaker))
        links += [(face_at[k.cluster_id], voice_at[k.speaker_id]) for k in rec.links
                  if k.cluster_id in face_at and k.speaker_id in voice_at]
    order = {rec.path: i for i, rec in enumerate(recordings)}

    face_match = [match_face(s.cluster.encodings, subjects, settings.face_tolerance) for s in faces]
    voice_resolution = resolve_voices(
        [s.speaker.voiceprint for s in voices],
        [list(s.voiceprints) if s.voiceprints is not None else [] for s in subjects],
        [_speech_s(s.speaker) for s in voices], [0 < s.speaker.bandwidth_hz <= NARROWBAND_HZ for s in voices],
        settings.voice)
    voice_match = [IdentityMatch(Modality.VOICE, subjects[m.subject].subject_id, m.distance, m.confidence)
                   if m else None for m in voice_resolution.matches]
    for f, v in links:
        fm, vm = face_match[f], voice_match[v]
        if fm and vm and fm.subject_id != vm.subject_id:
            continue
        if fm and not vm:
            voice_match[v] = fm
        elif vm and not fm:
            face_match[f] = vm

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

    for sighting, match in zip(faces, face_match):
        if match:
            person_for(match).faces.append(sighting)
    for sighting, match in zip(voices, voice_match):
        if match:
            person_for(match).voices.append(sighting)

    # Unknowns: link faces across recordings, voices across recordings, and lip-linked pairs.
    unknown_faces = [i for i, m in enumerate(face_match) if m is None]
    unknown_voices = [i for i, m in enumerate(voice_match) if m is None]
    groups = _UnionFind([("face", i) for i in unknown_faces] + [("voice", i) for i in unknown_voices])
    for group in _link([faces[i].cluster.encodings.mean(axis=0) for i in unknown_faces], "euclidean",
                       settings.face_link_tolerance):
        groups.join([("face", unknown_faces[g]) for g in group])
    # Groups of speakers unmatched by voice; a lip-linked face may have matched some since.
    voice_links = [[i for i in group if voice_match[i] is None] for group in voice_resolution.links]
    for group in voice_links:
        if group:
            groups.join([("voice", i) for i in group])
    for f, v in links:
        if face_match[f] is None and voice_match[v] is None:
            groups.join([("face", f), ("voice", v)])

    unknown_people: list[tuple[tuple[int, float], Person]] = []
    for members in groups.groups():
        person = Person("", None, None, None)
        starts = []
        for kind, i in members:
            if kind == "face":
                person.faces.append(faces[i])
                ranges = faces[i].cluster.time_ranges
                starts.append((order[faces[i].recording], ranges[0].start if ranges else 0.0))
            else:
                person.voices.append(voices[i])
                turns = voices[i].speaker.turns
                starts.append((order[voices[i].recording], turns[0].start if turns else 0.0))
        unknown_people.append((min(starts), person))
    unknown_people.sort(key=lambda item: item[0])
    for n, (_, person) in enumerate(unknown_people, start=1):
        person.person_id = f"unknown-{n}"

    subject_order = {s.subject_id: i for i, s in enumerate(subjects)}
    matched = sorted(by_subject.values(), key=lambda p: subject_order.get(p.subject_id, 0))
    return matched + [p for _, p in unknown_people]


# Reusing a resolution: a rescan whose recordings, enrolment and settings are unchanged gets the
# same people, so the scan database keeps each resolution as references into the recordings.

#: The code `resolve_people` runs or reads the output of: this module, the analysis stages, the records.
RESOLUTION_CODE = ("identity/people.py", "analysis", "models")


def resolution_key(
    recordings: list[RecordingAnalysis],
    subjects: list[EnrolledSubject],
    settings: ResolverSettings = ResolverSettings(),
) -> str:
    """A digest of everything `resolve_people` reads: equal keys mean equal people.

    Covers the face encodings, voiceprints, first appearances and face-voice links of every
    recording (by position, not by path: moving a folder keeps its people), the enrolled subjects'
    references, the settings and the source of the resolving code.
    """
    digest = hashlib.sha256()
    digest.update(source_digest(*RESOLUTION_CODE).encode())
    digest.update(repr(settings).encode())

    def add(*parts) -> None:
        for part in parts:
            if isinstance(part, np.ndarray):
                digest.update(f"{part.dtype}{part.shape}".encode())
                digest.update(np.ascontiguousarray(part).tobytes())
            else:
                digest.update(repr(part).encode())

    for subject in subjects:
        add("subject", subject.subject_id, subject.name, subject.face_encodings,
            subject.voiceprints if subject.voiceprints is not None else "no voice")
    for index, rec in enumerate(recordings):
        add("recording", index, rec.status.value)
        if rec.status is RecordingStatus.UNREADABLE:
            continue
        for cluster in rec.faces.clusters if rec.faces else []:
            add("face", cluster.cluster_id, cluster.encodings,
                cluster.time_ranges[0].start if cluster.time_ranges else None)
        for speaker in rec.voices.speakers if rec.voices else []:
            add("voice", speaker.speaker_id, speaker.voiceprint, speaker.turns[0].start if speaker.turns else None)
        add("links", [(k.cluster_id, k.speaker_id) for k in rec.links])
    return digest.hexdigest()


def people_to_records(people: list[Person], recordings: list[RecordingAnalysis]) -> list[dict]:
    """The resolution as JSON-ready references: each person's id, match, and (recording position,
    cluster or speaker id) of every sighting. No biometric vector is in it."""
    position = {rec.path: i for i, rec in enumerate(recordings)}
    return [
        {
            "person_id": p.person_id,
            "subject_id": p.subject_id,
            "display_name": p.display_name,
            "match": None if p.match is None else {
                "modality": p.match.modality.value, "subject_id": p.match.subject_id,
                "distance": p.match.distance, "confidence": p.match.confidence},
            "faces": [[position[s.recording], s.cluster.cluster_id] for s in p.faces],
            "voices": [[position[s.recording], s.speaker.speaker_id] for s in p.voices],
        }
        for p in people
    ]


def people_from_records(records: list[dict], recordings: list[RecordingAnalysis]) -> list[Person] | None:
    """Rebuild the people of `people_to_records` on these recordings; None if a reference does not fit."""
    try:
        clusters = [{c.cluster_id: c for c in rec.faces.clusters} if rec.faces else {} for rec in recordings]
        speakers = [{s.speaker_id: s for s in rec.voices.speakers} if rec.voices else {} for rec in recordings]
        people = []
        for record in records:
            match = record["match"]
            people.append(Person(
                record["person_id"], record["subject_id"], record["display_name"],
                None if match is None else IdentityMatch(Modality(match["modality"]), match["subject_id"],
                                                          match["distance"], match["confidence"]),
                faces=[FaceSighting(recordings[r].path, clusters[r][c]) for r, c in record["faces"]],
                voices=[VoiceSighting(recordings[r].path, speakers[r][v]) for r, v in record["voices"]],
            ))
        return people
    except (KeyError, IndexError, TypeError, ValueError):
        return None


class _UnionFind:
    """Disjoint sets of hashable items, kept in first-seen order."""

    def __init__(self, items: list):
        self._parent = {item: item for item in items}

    def _root(self, item):
        while self._parent[item] != item:
            self._parent[item] = self._parent[self._parent[item]]
            item = self._parent[item]
        return item

    def join(self, items: list) -> None:
        for other in items[1:]:
            self._parent[self._root(other)] = self._root(items[0])

    def groups(self) -> list[list]:
        by_root: dict = {}
        for item in self._parent:
            by_root.setdefault(self._root(item), []).append(item)
        return list(by_root.values())


def match_face(encodings: np.ndarray, subjects: list[EnrolledSubject], tolerance: float) -> IdentityMatch | None:
    """The enrolled subject whose reference photos are closest to these encodings, if close enough.

    The cluster's distance to a subject is the median over its encodings of the distance to the
    nearest reference photo, so one odd frame neither makes nor breaks a match.
    """
    best: tuple[float, str] | None = None
    for subject in subjects:
        if len(subject.face_encodings) == 0 or len(encodings) == 0:
            continue
        distance = float(np.median([face_distance(subject.face_encodings, e).min() for e in encodings]))
        if best is None or distance < best[0]:
            best = (distance, subject.subject_id)
    if best is None or best[0] >= tolerance:
        return None
    return IdentityMatch(Modality.FACE, best[1], round(best[0], 4), round(face_match_confidence(best[0]), 4))


def _speech_s(speaker) -> float:
    """Seconds of speech behind a speaker's voiceprint: its usable speech, else all of its turns."""
    return float(speaker.usable_speech_s) or float(sum(t.duration for t in speaker.turns))


def _link(vectors: list[np.ndarray], metric: str, threshold: float) -> list[list[int]]:
    """Group vectors whose average-linkage distance stays under `threshold`."""
    if not vectors:
        return []
    if len(vectors) == 1:
        return [[0]]
    return label_groups(average_linkage(np.vstack(vectors), threshold, metric))
