"""Cloneability: turn measured face and voice material into tiers, a 0-100 score and reasons.

The thresholds are the starting rubric of the product's risk evidence (docs/scoring.md cites the
source of each default). They live in one place, `Rubric`, so a config file can override them as
cloning models need less material every year.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.models import (
    FaceExposure,
    FaceSighting,
    Level,
    Modality,
    Person,
    RecordingExposure,
    ReductionPlan,
    RiskAssessment,
    VoiceExposure,
    VoiceSighting,
)


@dataclass(frozen=True)
class Rubric:
    """Thresholds of the cloneability rubric, with the published evidence behind each default.

    Face (pixel sizes are face-box widths in the original recording):
        face_min_eye_distance_px: 10 px between the eyes; human matching falls to chance-like
            50.7% at 10 px (arXiv 2503.20108). Below it a face is not identifiable.
        face_medium_px: 128 px; inswapper_128 / roop / FaceFusion swap from a single 128 px face.
        face_high_px: 256 px frontal (|yaw| <= face_frontal_yaw_deg); SadTalker, LivePortrait and
            FOMM animate one 256 px image.
        face_high_frames: 500 usable frames; faceswap advises 500-5000 images per side.
        face_critical_frames: 1000 usable frames at face_high_px; DeepFaceLab "minimum is 1000".
        face_critical_yaw_span_deg: views beyond +-45 deg give a trained model the poses it needs.
    Voice (seconds of usable single-speaker speech):
        voice_none_s: 2 s; SV2TTS speaker embeddings are meaningful from about 2 s.
        voice_low_s: 3 s; VALL-E clones from a 3 s prompt, so below it only weak material exists.
        voice_min_snr_db: 10 dB; zero-shot output deteriorates with noisy prompts (arXiv 2406.05699).
        voice_high_longest_s: 6 s clean stretch; XTTS-v2 clones from "a 6-second clip".
        voice_high_total_s: 30 s; commercial instant cloning needs 10-30 s.
        voice_critical_total_s: 60 s; GPT-SoVITS / YourTTS few-shot fine-tuning on about 1 min.
        voice_narrowband_hz: 4000 Hz; telephone-band speech lowers the tier by one.
    """

    face_min_eye_distance_px: float = 10.0
    face_low_px: float = 112.0
    face_medium_px: float = 128.0
    face_high_px: float = 256.0
    face_frontal_yaw_deg: float = 15.0
    face_high_frames: int = 500
    face_critical_frames: int = 1000
    face_critical_yaw_span_deg: float = 45.0

    voice_none_s: float = 2.0
    voice_low_s: float = 3.0
    voice_min_snr_db: float = 10.0
    voice_medium_longest_s: float = 3.0
    voice_high_longest_s: float = 6.0
    voice_high_total_s: float = 30.0
    voice_critical_total_s: float = 60.0
    voice_narrowband_hz: float = 4000.0


DEFAULT_RUBRIC = Rubric()

# Score bands per tier: the tier decides the band, the strength of the evidence the place inside it.
_SCORE_BANDS = {
    Level.NONE: (0, 9),
    Level.LOW: (10, 34),
    Level.MEDIUM: (35, 59),
    Level.HIGH: (60, 84),
    Level.CRITICAL: (85, 100),
}


@dataclass(frozen=True)
class FaceTotals:
    """The numbers a face tier is graded on, for one set of face detections.

    Totals of separate sets combine with `+` (counts add, maxima and yaw ranges widen), so a plan
    that tries leaving out each recording in turn re-adds per-recording totals instead of walking
    every detection again.
    """

    detections: int = 0
    usable: int = 0
    large_usable: int = 0
    best_px: float = 0.0  # largest usable face
    frontal_px: float = 0.0  # largest usable face within the rubric's frontal yaw
    eye_px: float = 0.0  # largest eye distance of any detection
    sharpness: float = 0.0  # sharpest detection
    usable_yaws: tuple[float, float] | None = None
    any_yaws: tuple[float, float] | None = None

    @classmethod
    def of(cls, detections: list, rubric: Rubric = DEFAULT_RUBRIC) -> FaceTotals:
        """The totals of one set of face detections (`FaceDetection`), measured against `rubric`."""
        if not detections:
            return cls()
        usable = [d for d in detections if d.usable]
        return cls(
            detections=len(detections),
            usable=len(usable),
            large_usable=sum(1 for d in usable if d.size_px >= rubric.face_high_px),
            best_px=max((d.size_px for d in usable), default=0.0),
            frontal_px=max((d.size_px for d in usable if abs(d.yaw_deg) <= rubric.face_frontal_yaw_deg), default=0.0),
            eye_px=max(d.eye_distance_px for d in detections),
            sharpness=max(d.sharpness for d in detections),
            usable_yaws=(min(d.yaw_deg for d in usable), max(d.yaw_deg for d in usable)) if usable else None,
            any_yaws=(min(d.yaw_deg for d in detections), max(d.yaw_deg for d in detections)),
        )

    def __add__(self, other: FaceTotals) -> FaceTotals:
        def widen(a, b):
            return b if a is None else a if b is None else (min(a[0], b[0]), max(a[1], b[1]))

        return FaceTotals(
            self.detections + other.detections, self.usable + other.usable,
            self.large_usable + other.large_usable, max(self.best_px, other.best_px),
            max(self.frontal_px, other.frontal_px), max(self.eye_px, other.eye_px),
            max(self.sharpness, other.sharpness), widen(self.usable_yaws, other.usable_yaws),
            widen(self.any_yaws, other.any_yaws),
        )

    @property
    def yaw_range(self) -> tuple[float, float]:
        """Yaw range of the usable detections, or of all when none is usable."""
        return self.usable_yaws or self.any_yaws or (0.0, 0.0)

    def grade(self, rubric: Rubric = DEFAULT_RUBRIC) -> tuple[Level, list[str]]:
        """The face tier of these totals and the reasons in plain words (`grade_face`)."""
        return grade_face(
            usable_frames=self.usable,
            best_face_px=self.best_px,
            best_frontal_face_px=self.frontal_px,
            best_eye_distance_px=self.eye_px,
            large_usable_frames=self.large_usable,
            yaw_range=self.yaw_range,
            rubric=rubric,
        )


def face_exposure(sightings: list[FaceSighting], rubric: Rubric = DEFAULT_RUBRIC) -> FaceExposure | None:
    """Pool every face detection of one person and grade how cloneable the face is."""
    totals = FaceTotals.of([d for s in sightings for d in s.cluster.detections], rubric)
    if not totals.detections:
        return None
    tier, reasons = totals.grade(rubric)
    reasons.insert(
        0,
        f"{totals.detections} face detection(s) in {len({s.recording for s in sightings})} recording(s), "
        f"{totals.usable} usable (sharp, eyes open, within 45 deg of frontal)",
    )
    return FaceExposure(
        usable_frames=totals.usable,
        detections=totals.detections,
        best_face_px=round(totals.best_px, 1),
        best_frontal_face_px=round(totals.frontal_px, 1),
        best_eye_distance_px=round(totals.eye_px, 1),
        sharpness=round(totals.sharpness, 1),
        yaw_range=(round(totals.yaw_range[0], 1), round(totals.yaw_range[1], 1)),
        tier=tier,
        reasons=reasons,
    )


def grade_face(
    *,
    usable_frames: int,
    best_face_px: float,
    best_frontal_face_px: float,
    best_eye_distance_px: float,
    large_usable_frames: int = 0,
    yaw_range: tuple[float, float] = (0.0, 0.0),
    rubric: Rubric = DEFAULT_RUBRIC,
) -> tuple[Level, list[str]]:
    """The face tier for measured face material, with the reasons in plain words."""
    r = rubric
    if best_eye_distance_px < r.face_min_eye_distance_px:
        return Level.NONE, [
            f"largest eye distance {best_eye_distance_px:.0f} px is under {r.face_min_eye_distance_px:.0f} px: "
            "too small to identify or clone"
        ]
    if usable_frames == 0:
        return Level.LOW, ["only blurred, closed-eye or profile views: not usable for a face swap"]
    wide_pose = yaw_range[0] <= -r.face_critical_yaw_span_deg or yaw_range[1] >= r.face_critical_yaw_span_deg
    if large_usable_frames >= r.face_critical_frames and wide_pose:
        return Level.CRITICAL, [
            f"{large_usable_frames} usable frames at {r.face_high_px:.0f} px or more across yaw "
            f"{yaw_range[0]:.0f} to {yaw_range[1]:.0f} deg: enough to train a face-swap model "
            f"(DeepFaceLab needs about {r.face_critical_frames})"
        ]
    if best_frontal_face_px >= r.face_high_px:
        return Level.HIGH, [
            f"frontal face of {best_frontal_face_px:.0f} px (>= {r.face_high_px:.0f} px): "
            "one image drives a talking-head animation (SadTalker, LivePortrait)"
        ]
    if usable_frames >= r.face_high_frames:
        return Level.HIGH, [
            f"{usable_frames} usable frames (>= {r.face_high_frames}): enough to train a face-swap model (faceswap)"
        ]
    if best_face_px >= r.face_medium_px:
        return Level.MEDIUM, [
            f"usable face of {best_face_px:.0f} px (>= {r.face_medium_px:.0f} px): "
            "a single-image face swap works at 128 px (inswapper_128, roop, FaceFusion)"
        ]
    return Level.LOW, [
        f"best usable face {best_face_px:.0f} px, under {r.face_medium_px:.0f} px: "
        "below the resolution of single-image face swaps"
    ]


def voice_exposure(sightings: list[VoiceSighting], rubric: Rubric = DEFAULT_RUBRIC) -> VoiceExposure | None:
    """Pool every speaker turn of one person and grade how cloneable the voice is."""
    speakers = [s.speaker for s in sightings]
    if not speakers:
        return None
    tier, reasons, (usable, longest, snr, bandwidth) = _grade_speakers(speakers, rubric)
    reasons.insert(
        0,
        f"{sum(s.speech_s for s in speakers):.1f} s of speech in {len({s.recording for s in sightings})} "
        f"recording(s), {usable:.1f} s usable (single speaker, not clipped), longest clean stretch "
        f"{longest:.1f} s, SNR {snr:.0f} dB, bandwidth {bandwidth:.0f} Hz",
    )
    return VoiceExposure(
        speech_s=round(sum(s.speech_s for s in speakers), 2),
        usable_speech_s=round(usable, 2),
        longest_clean_s=round(longest, 2),
        snr_db=round(snr, 1),
        bandwidth_hz=round(bandwidth, 0),
        tier=tier,
        reasons=reasons,
    )


def _grade_speakers(speakers: list, rubric: Rubric) -> tuple[Level, list[str], tuple[float, float, float, float]]:
    """grade_voice on pooled speakers, with what it was given: (usable s, longest clean s, SNR, bandwidth)."""
    usable = sum(s.usable_speech_s for s in speakers)
    longest = max(s.longest_clean_s for s in speakers)
    weights = [max(s.usable_speech_s, 1e-6) for s in speakers]
    snr = sum(s.snr_db * w for s, w in zip(speakers, weights)) / sum(weights)
    # Bandwidth of the best material: a wideband recording is what a cloner would pick.
    bandwidth = max(s.bandwidth_hz for s in speakers)
    tier, reasons = grade_voice(
        usable_speech_s=usable, longest_clean_s=longest, snr_db=snr, bandwidth_hz=bandwidth, rubric=rubric
    )
    return tier, reasons, (usable, longest, snr, bandwidth)


def grade_voice(
    *,
    usable_speech_s: float,
    longest_clean_s: float,
    snr_db: float,
    bandwidth_hz: float,
    rubric: Rubric = DEFAULT_RUBRIC,
) -> tuple[Level, list[str]]:
    """The voice tier for measured speech material, with the reasons in plain words."""
    r = rubric
    if usable_speech_s < r.voice_none_s:
        return Level.NONE, [
            f"{usable_speech_s:.1f} s of usable speech, under {r.voice_none_s:.0f} s: "
            "too little for a speaker embedding (SV2TTS needs about 2 s)"
        ]
    if usable_speech_s < r.voice_low_s or snr_db < r.voice_min_snr_db:
        why = (
            f"only {usable_speech_s:.1f} s of usable speech"
            if usable_speech_s < r.voice_low_s
            else f"noisy speech (SNR {snr_db:.0f} dB < {r.voice_min_snr_db:.0f} dB) degrades zero-shot clones"
        )
        return Level.LOW, [why]
    if usable_speech_s >= r.voice_critical_total_s:
        tier = Level.CRITICAL
        reasons = [
            f"{usable_speech_s:.0f} s of usable speech (>= {r.voice_critical_total_s:.0f} s): enough for "
            "few-shot fine-tuning (GPT-SoVITS, YourTTS need about 1 min)"
        ]
        if usable_speech_s >= 1800:
            reasons.append("over 30 min: enough for professional voice cloning services")
        elif usable_speech_s >= 600:
            reasons.append("over 10 min: enough for voice conversion training (RVC)")
    elif longest_clean_s >= r.voice_high_longest_s or usable_speech_s >= r.voice_high_total_s:
        tier = Level.HIGH
        reasons = [
            f"longest clean stretch {longest_clean_s:.1f} s, {usable_speech_s:.1f} s usable in total: "
            f"enough for zero-shot cloning (XTTS-v2 from 6 s, instant cloning services from 10-30 s)"
        ]
    elif longest_clean_s >= r.voice_medium_longest_s:
        tier = Level.MEDIUM
        reasons = [
            f"longest clean stretch {longest_clean_s:.1f} s (>= {r.voice_medium_longest_s:.0f} s): "
            "a zero-shot prompt (VALL-E from 3 s), short of the 6 s XTTS-v2 asks for"
        ]
    else:
        tier = Level.LOW
        reasons = [
            f"{usable_speech_s:.1f} s usable but no clean stretch of {r.voice_medium_longest_s:.0f} s: "
            "only fragments for a zero-shot prompt"
        ]
    if bandwidth_hz <= r.voice_narrowband_hz and tier > Level.NONE:
        tier = tier.lowered()
        reasons.append(
            f"telephone-band audio ({bandwidth_hz:.0f} Hz effective bandwidth <= {r.voice_narrowband_hz:.0f} Hz): "
            "one tier lower, speaker detail above 4 kHz is missing"
        )
    return tier, reasons


def assess(face: FaceExposure | None, voice: VoiceExposure | None) -> RiskAssessment:
    """Combine face and voice tiers into the person's overall cloneability and a 0-100 score."""
    face_tier = face.tier if face else Level.NONE
    voice_tier = voice.tier if voice else Level.NONE
    combined = max(face_tier, voice_tier)
    reasons = []
    if face_tier >= Level.LOW and voice_tier >= Level.LOW:
        # Face and voice of the same person make an audiovisual deepfake kit: one tier more.
        raised = combined if combined is Level.CRITICAL else _next(combined)
        reasons.append(
            f"face ({face_tier.value}) and voice ({voice_tier.value}) of the same person: "
            f"an audiovisual deepfake kit, combined tier raised to {raised.value}"
        )
        combined = raised
    else:
        reasons.append(f"combined tier is the higher of face ({face_tier.value}) and voice ({voice_tier.value})")
    return RiskAssessment(
        face_tier=face_tier,
        voice_tier=voice_tier,
        combined_tier=combined,
        score=_score(combined, face, voice),
        reasons=reasons,
    )


def _next(level: Level) -> Level:
    order = list(Level)
    return order[min(len(order) - 1, order.index(level) + 1)]


def _score(tier: Level, face: FaceExposure | None, voice: VoiceExposure | None) -> int:
    low, high = _SCORE_BANDS[tier]
    # Position inside the band: how far the strongest material goes past the entry threshold.
    strength = 0.0
    if face is not None:
        strength = max(strength, min(1.0, face.best_face_px / 512.0), min(1.0, face.usable_frames / 2000.0))
    if voice is not None:
        strength = max(strength, min(1.0, voice.usable_speech_s / 120.0), min(1.0, voice.longest_clean_s / 15.0))
    return int(round(low + (high - low) * strength))


def score_person(person: Person, rubric: Rubric = DEFAULT_RUBRIC) -> None:
    """Grade a person over the whole scan and per recording, and plan how to reduce the exposure."""
    person.face = face_exposure(person.faces, rubric)
    person.voice = voice_exposure(person.voices, rubric)
    person.risk = assess(person.face, person.voice)
    person.by_recording = []
    for recording in person.recordings:
        face = face_exposure([s for s in person.faces if s.recording == recording], rubric)
        voice = voice_exposure([s for s in person.voices if s.recording == recording], rubric)
        risk = assess(face, voice)
        person.by_recording.append(RecordingExposure(
            recording=recording, face_tier=risk.face_tier, voice_tier=risk.voice_tier,
            combined_tier=risk.combined_tier, score=risk.score,
            usable_frames=face.usable_frames if face else 0, best_face_px=face.best_face_px if face else 0.0,
            usable_speech_s=voice.usable_speech_s if voice else 0.0,
            longest_clean_s=voice.longest_clean_s if voice else 0.0,
        ))
    person.by_recording.sort(key=lambda e: (-e.score, str(e.recording)))
    person.reductions = [
        plan
        for modality, tier in ((Modality.FACE, person.risk.face_tier), (Modality.VOICE, person.risk.voice_tier))
        if tier >= Level.MEDIUM
        for plan in [plan_reduction(person, modality, tier.lowered(), rubric)]
        if plan is not None
    ]


def plan_reduction(
    person: Person, modality: Modality, target: Level, rubric: Rubric = DEFAULT_RUBRIC, max_steps: int = 10
) -> ReductionPlan | None:
    """The fewest recordings (greedy) whose removal brings `modality` down to `target` or below.

    Each step removes the recording whose absence lowers the tier most, then the strength of what is
    left (usable frames and face size, or usable and longest clean speech). None when no removal
    within `max_steps` reaches the target.
    """
    sightings = person.faces if modality is Modality.FACE else person.voices
    recordings = list(dict.fromkeys(s.recording for s in sightings))
    if modality is Modality.FACE:
        per_recording = {r: FaceTotals.of([d for s in sightings if s.recording == r for d in s.cluster.detections],
                                          rubric) for r in recordings}

        def judge(kept: list) -> tuple[Level, float]:
            totals = sum((per_recording[r] for r in kept), FaceTotals())
            tier = totals.grade(rubric)[0] if totals.detections else Level.NONE
            return tier, totals.usable + totals.best_px
    else:
        by_recording = {r: [s for s in sightings if s.recording == r] for r in recordings}

        def judge(kept: list) -> tuple[Level, float]:
            speakers = [s.speaker for r in kept for s in by_recording[r]]
            if not speakers:
                return Level.NONE, 0.0
            tier = _grade_speakers(speakers, rubric)[0]
            return tier, sum(s.usable_speech_s for s in speakers) + max(s.longest_clean_s for s in speakers)

    before = judge(recordings)[0]
    if before <= target:
        return None
    kept = list(recordings)
    removed: list = []
    for _ in range(min(max_steps, len(recordings))):
        def without(r):
            tier, strength = judge([k for k in kept if k != r])
            return tier.rank, strength, str(r)

        best = min(kept, key=without)
        removed.append(best)
        kept.remove(best)
        after = judge(kept)[0]
        if after <= target:
            return ReductionPlan(modality, removed, before, after)
    return None
