"""The CI examples in docs/ci.md are valid YAML and their scan commands run as written."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from tests.conftest import REPO

DOC = REPO / "docs" / "ci.md"


def examples() -> dict[str, dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    parsed = [yaml.safe_load(b) for b in blocks]
    return {"github": parsed[0], "gitlab": parsed[1], "waivers": parsed[2]}


def scan_command(lines: list[str]) -> list[str]:
    (line,) = [line for line in lines if "likeness scan" in line]
    words = shlex.split(line)
    return words[words.index("likeness") + 1:]


def test_github_workflow_uploads_sarif_written_by_the_scan():
    workflow = examples()["github"]
    steps = workflow["jobs"]["likeness"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    command = scan_command([s.get("run", "") for s in steps])
    out = command[command.index("--out") + 1]
    assert upload["with"]["sarif_file"] == f"{out}/results.sarif"
    assert "sarif" in command[command.index("--format") + 1].split(",")
    assert workflow["jobs"]["likeness"]["permissions"]["security-events"] == "write"


def test_documented_commands_run_and_write_what_ci_reads(tmp_path, sample_data):
    shutil.copytree(sample_data / "enrol", tmp_path / "enrol")
    shutil.copy(sample_data / "consent.yaml", tmp_path / "consent.yaml")
    (tmp_path / "recordings").mkdir()
    shutil.copy(sample_data / "recordings" / "team_photo.jpg", tmp_path / "recordings")
    gitlab = examples()["gitlab"]["likeness"]
    for name, lines in (("github", [s.get("run", "") for s in examples()["github"]["jobs"]["likeness"]["steps"]]),
                        ("gitlab", gitlab["script"])):
        command = scan_command(lines)
        proc = subprocess.run([sys.executable, "-m", "scanner", *command], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 1, (name, proc.stderr)  # an unknown face in the photo fails at high
        out = tmp_path / command[command.index("--out") + 1]
        assert (out / "results.json").is_file()
        if name == "gitlab":
            junit = out / Path(gitlab["artifacts"]["reports"]["junit"]).name
            assert ET.parse(junit).getroot().find(".//failure") is not None
        shutil.rmtree(out)


def test_waiver_example_is_a_valid_waivers_file(tmp_path):
    from scanner.waivers import load_waivers

    path = tmp_path / "likeness-waivers.yaml"
    path.write_text(yaml.safe_dump(examples()["waivers"]))
    waivers = load_waivers(path)
    assert len(waivers.waivers) == 2 and waivers.warnings == ()
