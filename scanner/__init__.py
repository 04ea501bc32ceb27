"""likeness: find identifiable faces and voices in recordings, score cloneability, check consent.

The library API, in three lines (see `scanner.api` for every argument and its default):

    from scanner import scan, load_consent, write_reports

    result = scan("sample_data/recordings", consent=load_consent("sample_data/consent.yaml"), purposes=["ai-training"])
    write_reports(result, "likeness-report")

`result` is a `ScanResult`: its `recordings`, `people` (with their `RiskAssessment`) and `findings`.
"""

from __future__ import annotations

__version__ = "0.1.0"

# The names below load on first use: `import scanner` (and so `likeness --version`) stays cheap,
# while the analysis stack they need (numpy, dlib, librosa, onnxruntime) takes seconds to import.
_EXPORTS = {
    "scan": "scanner.api",
    "load_consent": "scanner.api",
    "write_reports": "scanner.api",
    "ConsentRecords": "scanner.policy.consent.records",
    "ConsentFileError": "scanner.policy.consent.records",
    "Finding": "scanner.models",
    "Level": "scanner.models",
    "Person": "scanner.models",
    "RecordingAnalysis": "scanner.models",
    "RiskAssessment": "scanner.models",
    "ScanResult": "scanner.models",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scanner' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
