"""Enrolment: compute each subject's reference face encodings and voiceprints.

References come from the media named in the consent file. A reference that cannot be used
(unreadable, no face, several faces, no speech) is reported as a problem and left out, so one bad
photo never stops a scan, yet nobody is silently matched against nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scanner.identity.people import EnrolledSubject
from scanner.media.audio import load_audio
from scanner.media.fileformat import Problem
from scanner.models import MediaError, Modality
from scanner.policy.consent.records import ConsentRecords

#: Least speech an enrolment voice sample must hold; speaker models are unreliable below a few
#: seconds (PRODUCT.md measured 10-20 s enrolments), so shorter samples are rejected.
MIN_ENROLMENT_SPEECH_S = 5.0


@dataclass
class EnrolmentResult:
    """The subjects with usable references, and a problem (file, reason) for every reference left out."""

    subjects: list[EnrolledSubject]
    problems: list[Problem] = field(default_factory=list)


def enrol_subjects(consent: ConsentRecords, audio_sample_rate: int = 16000) -> EnrolmentResult:
    """Reference biometrics for every subject of the consent records."""
    if not consent.subjects:
        return EnrolmentResult([])
    # Deferred: the face and voice stacks (dlib, librosa, onnxruntime) load only when someone is enrolled.
    from scanner.analysis.faces.recognition import encode_face_image
    from scanner.analysis.voices.analyzer import VoiceAnalyzer, voiceprint_from_audio

    analyzer = VoiceAnalyzer()
    subjects: list[EnrolledSubject] = []
    problems: list[Problem] = []
    for i, subject in enumerate(consent.subjects):
        face_refs: list[np.ndarray] = []
        for j, path in enumerate(consent.enrolment_paths(subject, Modality.FACE)):
            at = ("subjects", i, "enrolment", "faces", j)
            try:
                encodings = encode_face_image(path)
            except MediaError as exc:
                problems.append(consent.problem(at, f"enrolment photo '{path.name}' is unreadable: {exc}"))
                continue
            if len(encodings) != 1:
                problems.append(consent.problem(
                    at, f"enrolment photo '{path.name}' shows {len(encodings)} faces, expected exactly one"
                ))
                continue
            face_refs.append(encodings[0])
        voice_refs: list[np.ndarray] = []
        for j, path in enumerate(consent.enrolment_paths(subject, Modality.VOICE)):
            at = ("subjects", i, "enrolment", "voices", j)
            try:
                audio = load_audio(path, sample_rate=audio_sample_rate)
            except MediaError as exc:
                problems.append(consent.problem(at, f"voice sample '{path.name}' is unreadable: {exc}"))
                continue
            # Speech detection alone (the voiceprint below embeds this speech): diarizing a sample
            # that holds one voice by assumption would only cost time.
            speech_s = (float(analyzer.speech(audio)[1].sum()) * 0.01
                        if audio is not None and len(audio.samples) else 0.0)
            if speech_s < MIN_ENROLMENT_SPEECH_S:
                problems.append(consent.problem(
                    at, f"voice sample '{path.name}' holds {speech_s:.1f} s of speech, "
                    f"at least {MIN_ENROLMENT_SPEECH_S:.0f} s are needed",
                ))
                continue
            voice_refs.append(voiceprint_from_audio(audio, analyzer))
        subjects.append(
            EnrolledSubject(
                subject_id=subject.id,
                name=subject.name,
                face_encodings=np.vstack(face_refs) if face_refs else np.zeros((0, 128)),
                voiceprints=np.vstack(voice_refs) if voice_refs else None,
            )
        )
    return EnrolmentResult(subjects, problems)
