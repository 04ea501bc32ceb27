"""Voices: speech detection, voiceprints and diarization."""
