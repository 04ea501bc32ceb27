"""Write consent.schema.json from the consent file's models: `python -m scanner.schemas.make_consent_schema`.

The committed schema is what other tools validate against; a test checks it matches the models.
"""

from __future__ import annotations

import json
from pathlib import Path

from scanner.policy.consent.records import ConsentDocument

SCHEMA_PATH = Path(__file__).with_name("consent.schema.json")


def consent_schema() -> dict:
    schema = ConsentDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "likeness consent records"
    schema["description"] = (
        "Subjects with enrolment media and consent grants, plus per-recording consent. "
        "Dates are YYYY-MM-DD; paths are relative to the consent file."
    )
    return schema


if __name__ == "__main__":
    SCHEMA_PATH.write_text(json.dumps(consent_schema(), indent=2) + "\n")
    print(f"wrote {SCHEMA_PATH}")
