"""The CI examples in docs/ci.md are valid YAML and fit what they use (tests/test_install.py runs them)."""

from __future__ import annotations

import re
import shlex

import yaml

from tests.helpers import REPO

DOC = REPO / "docs" / "ci.md"


def examples() -> dict[str, dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    parsed = [yaml.safe_load(b) for b in blocks]
    return {"github": parsed[0], "gitlab": parsed[1], "waivers": parsed[2]}


def test_github_workflow_uses_this_action_at_the_current_release():
    """The workflow pins the action by its minor tag and passes only inputs action.yml declares; running it
    (and the GitLab job) against a scratch media folder is tests/test_install.py's job."""
    from scanner import __version__

    workflow = examples()["github"]
    (step,) = [s for s in workflow["jobs"]["likeness"]["steps"] if "/likeness@" in s.get("uses", "")]
    major_minor = ".".join(__version__.split(".")[:2])
    assert step["uses"] == f"<owner>/likeness@v{major_minor}"
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert set(step["with"]) <= set(action["inputs"])
    assert "sarif" in step["with"]["formats"].split(",")
    assert workflow["jobs"]["likeness"]["permissions"]["security-events"] == "write"


def test_gitlab_job_keeps_the_junit_file_its_scan_writes():
    job = examples()["gitlab"]["likeness"]
    (line,) = [line for line in job["script"] if line.startswith("likeness scan")]
    words = shlex.split(line)
    out = words[words.index("--out") + 1]
    assert "junit" in words[words.index("--format") + 1].split(",")
    assert job["artifacts"]["reports"]["junit"] == f"{out}/junit.xml"
    assert job["artifacts"]["when"] == "always"


def test_waiver_example_is_a_valid_waivers_file(tmp_path):
    from scanner.policy.waivers import load_waivers

    path = tmp_path / "likeness-waivers.yaml"
    path.write_text(yaml.safe_dump(examples()["waivers"]))
    waivers = load_waivers(path)
    assert len(waivers.waivers) == 2 and waivers.warnings == ()
