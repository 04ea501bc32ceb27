"""Enrolment: compute each subject's reference face encodings and voiceprints.

References come from the media named in the consent file. A reference that cannot be used
(unreadable, no face, several faces, no speech) is reported as a problem and left out, so one bad
photo never stops a scan, yet nobody is silently matched against nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scanner import media
from scanner.consent import ConsentRecords
from scanner.models import MediaError, Modality
from scanner.people import EnrolledSubject

#: Least speech an enrolment voice sample must hold; speaker models are unreliable below a few
#: seconds (PRODUCT.md measured 10-20 s enrolments), so shorter samples are rejected.
MIN_ENROLMENT_SPEECH_S = 5.0


@dataclass
class EnrolmentResult:
    subjects: list[EnrolledSubject]
    problems: list[str] = field(default_factory=list)


def enrol_subjects(consent: ConsentRecords, audio_sample_rate: int = 16000) -> EnrolmentResult:
    """Reference biometrics for every subject of the consent records."""
    from scanner.faces import encode_face_image
    from scanner.voices import VoiceAnalyzer, voiceprint_from_audio

    subjects: list[EnrolledSubject] = []
    problems: list[str] = []
    for subject in consent.subjects:
        face_refs: list[np.ndarray] = []
        for path in consent.enrolment_paths(subject, Modality.FACE):
            try:
                encodings = encode_face_image(path)
            except MediaError as exc:
                problems.append(f"{path}: enrolment photo of '{subject.id}' unreadable: {exc}")
                continue
            if len(encodings) != 1:
                problems.append(
                    f"{path}: enrolment photo of '{subject.id}' shows {len(encodings)} faces, expected exactly one"
                )
                continue
            face_refs.append(encodings[0])
        voice_refs: list[np.ndarray] = []
        for path in consent.enrolment_paths(subject, Modality.VOICE):
            try:
                audio = media.load_audio(path, sample_rate=audio_sample_rate)
            except MediaError as exc:
                problems.append(f"{path}: voice sample of '{subject.id}' unreadable: {exc}")
                continue
            if audio is None or audio.duration_s < 1.0:
                problems.append(f"{path}: voice sample of '{subject.id}' has no usable audio")
                continue
            speech_s = VoiceAnalyzer().analyze(audio).speech_s
            if speech_s < MIN_ENROLMENT_SPEECH_S:
                problems.append(
                    f"{path}: voice sample of '{subject.id}' holds {speech_s:.1f} s of speech, "
                    f"at least {MIN_ENROLMENT_SPEECH_S:.0f} s are needed"
                )
                continue
            try:
                voice_refs.append(voiceprint_from_audio(audio))
            except ValueError as exc:
                problems.append(f"{path}: voice sample of '{subject.id}' is not usable: {exc}")
        subjects.append(
            EnrolledSubject(
                subject_id=subject.id,
                name=subject.name,
                face_encodings=np.vstack(face_refs) if face_refs else np.zeros((0, 128)),
                voiceprints=np.vstack(voice_refs) if voice_refs else None,
            )
        )
    return EnrolmentResult(subjects, problems)
