"""The documented installs, run the way their users run them.

Every command of each recipe (the README's Install section, action.yml's steps, the Dockerfile's RUN
lines) runs in a scratch folder outside this checkout: a media folder with a consent file, its own uv
tool directory, and a PATH without this checkout's .venv, where cc, gcc, g++, c++, clang and cmake are
stubs that log their call and fail. A recipe that only works from a clone, or that builds dlib from
source, fails here.

Nothing is published from this machine, so three addresses of a release are mapped to local copies:
the raw-file URL and the git URL of the tag `v<version>` to a scratch git repository of this working
tree (tagged so), and the package-index requirement `likeness-scanner==<version>` to the wheel that
`uv build` makes from that repository (the action's `version` input reaches it through UV_FIND_LINKS).

By default installs run offline from uv's cache (once online on a machine whose cache lacks an index
page), and three steps that only cost time are left out or lightened: the pip recipe and the GitLab
image's `pip install uv` (they download hundreds of MB), the Dockerfile's bytecode compilation and
copying out of uv's cache (hard links instead), and each `likeness demo` (a full scan of the sample
recordings per install), which becomes `likeness --version` plus a check that the sample data it scans
is installed; scans of the scratch media folder exercise the detectors instead.
LIKENESS_TEST_INSTALL_FULL=1 runs every recipe exactly as written, pip and demo included.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from scanner import __version__
from tests.helpers import REPO, SAMPLE_DATA
from tests.test_ci_examples import examples as ci_examples

FULL = bool(os.environ.get("LIKENESS_TEST_INSTALL_FULL"))
UV = os.environ.get("UV") or shutil.which("uv")
pytestmark = [pytest.mark.skipif(UV is None, reason="uv is not installed (scripts/test installs it)"),
              pytest.mark.slow]  # each test installs the tool into a scratch folder

VERSION = __version__
RAW_URL = f"https://raw.githubusercontent.com/<owner>/likeness/v{VERSION}"
GIT_URL = f"git+https://github.com/<owner>/likeness@v{VERSION}"
INDEX_REQUIREMENT = f"likeness-scanner=={VERSION}"
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++", "cmake")
RECIPE_TIMEOUT = 1800 if FULL else 600


@dataclass(frozen=True)
class Release:
    """A release as its users reach it: the tagged source tree and the wheel built from it."""

    version: str
    source: Path  # a git repository of this working tree, tagged v<version>
    wheel: Path


@dataclass
class Sandbox:
    """A user's machine: a media folder with a consent file, uv's tool directory and compiler stubs."""

    root: Path
    env: dict[str, str]
    compiler_log: Path

    @property
    def media(self) -> Path:
        return self.root / "media"

    def run(self, script: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            shell: tuple[str, ...] = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")
            ) -> subprocess.CompletedProcess:
        return subprocess.run([*shell, script], cwd=cwd or self.media, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=RECIPE_TIMEOUT)

    def assert_no_compiler_ran(self, proc: subprocess.CompletedProcess) -> None:
        called = self.compiler_log.read_text() if self.compiler_log.exists() else ""
        assert called == "", f"a compiler was invoked:\n{called}"
        assert not re.search(r"Build(ing|t) dlib==", proc.stdout + proc.stderr), proc.stderr[-3000:]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{shlex.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _uv_offline_first(args: list[str], env: dict[str, str]) -> None:
    """Run uv offline; on a machine whose uv cache lacks an index page, once online to fill it."""
    offline = subprocess.run([UV, *args, "--offline"], capture_output=True, text=True, env=env, timeout=900)
    if offline.returncode != 0:
        _run([UV, *args], env=env)


def _user_env(root: Path) -> tuple[dict[str, str], Path]:
    """The environment of a user's shell: no trace of this checkout, compilers replaced by stubs."""
    stubs, log = root / "compiler-stubs", root / "compilers-called.log"
    stubs.mkdir(parents=True)
    for name in COMPILERS:
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "$0 $*" >> {shlex.quote(str(log))}\nexit 1\n')
        stub.chmod(0o755)
    keep = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and not Path(p).resolve().is_relative_to(REPO) and not p.rstrip("/").endswith(".venv/bin")]
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
           and not (k.startswith("UV_") and k != "UV_CACHE_DIR")}
    env.update(
        PATH=os.pathsep.join([str(stubs), str(root / "bin"), str(Path(UV).parent), *keep]),
        CC=str(stubs / "cc"), CXX=str(stubs / "c++"),
        UV_TOOL_DIR=str(root / "tools"), UV_TOOL_BIN_DIR=str(root / "bin"),
        UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1",
    )
    if not FULL:
        env["UV_OFFLINE"] = "1"
    return env, log


def _media_folder(media: Path) -> None:
    """A user's repository: one photo of two unconsented people and a consent file for someone else."""
    (media / "recordings").mkdir(parents=True)
    shutil.copy(SAMPLE_DATA / "recordings" / "team_photo.jpg", media / "recordings")
    (media / "consent.yaml").write_text(
        "subjects:\n  - id: alice\n    name: Alice Example\n    grants:\n"
        "      - purposes: [recording]\n        given: 2026-01-10\n"
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Release:
    """This working tree as a tagged git repository, and the wheel `uv build` makes from its sdist."""
    root = tmp_path_factory.mktemp("release")
    source = root / "likeness"
    files = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO).stdout
    for name in filter(None, files.split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    git = ["git", "-c", "user.name=release", "-c", "user.email=release@example.invalid", "-C", str(source)]
    _run([*git, "init", "-q"])
    _run([*git, "add", "-A"])
    _run([*git, "commit", "-q", "-m", f"likeness {VERSION}"])
    _run([*git, "tag", f"v{VERSION}"])
    env, _ = _user_env(root / "builder")
    env.pop("UV_OFFLINE", None)
    _uv_offline_first(["build", "--out-dir", str(root / "dist"), str(source)], env)
    wheel = root / "dist" / f"likeness_scanner-{VERSION}-py3-none-any.whl"
    assert wheel.is_file(), sorted(p.name for p in (root / "dist").iterdir())
    # Fills uv's index cache on a machine that has only synced the lock, so that installs run offline.
    wanted = root / "wanted.in"
    wanted.write_text(f"likeness-scanner @ {wheel.as_uri()}\n")
    _uv_offline_first(["pip", "compile", "-q", "-o", os.devnull, str(wanted), "--overrides",
                       str(source / "install" / "overrides.txt"), "-c", str(source / "install" / "requirements.txt")],
                      env)
    return Release(VERSION, source, wheel)


@pytest.fixture
def sandbox(tmp_path) -> Sandbox:
    env, log = _user_env(tmp_path)
    _media_folder(tmp_path / "media")
    return Sandbox(tmp_path, env, log)


# --- the README's Install section --------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """One ```bash block of the README's Install section, under its ### heading."""

    section: str
    script: str

    @property
    def name(self) -> str:
        first = next(line for line in self.script.splitlines() if line and not line.startswith("#"))
        return " ".join(word.strip('"') for word in first.split()[:4] if word != "\\")


def readme_recipes() -> list[Recipe]:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## Install\n")
    section = text[start:text.index("\n## ", start + 1)]
    recipes = []
    for part in re.split(r"\n### ", section)[1:]:
        heading = part.splitlines()[0].strip()
        recipes += [Recipe(heading, block) for block in re.findall(r"```bash\n(.*?)```", part, flags=re.S)]
    return recipes


USER_RECIPES = [r for r in readme_recipes() if r.section.startswith(("uv tool", "pip"))]


def localize(script: str, release: Release) -> str:
    """The release's public addresses, pointed at the local copies (see the module docstring)."""
    return (script.replace(RAW_URL, str(release.source))
            .replace(GIT_URL, f"git+{release.source.as_uri()}@v{release.version}")
            .replace(INDEX_REQUIREMENT, str(release.wheel)))


def installed_site_packages(sandbox: Sandbox) -> list[Path]:
    return [p.parent.parent for p in sandbox.root.glob("**/site-packages/scanner/__init__.py")
            if "compiler-stubs" not in p.parts]


def test_readme_lists_the_recipes_the_issue_asks_for():
    sections = {r.section for r in readme_recipes()}
    assert {"uv tool (recommended)", "pip", "Container"} <= sections, sections
    joined = "\n".join(r.script for r in USER_RECIPES)
    for form in (INDEX_REQUIREMENT, GIT_URL, f"likeness_scanner-{VERSION}-py3-none-any.whl", "uvx "):
        assert form in joined, f"no README recipe installs from {form}"
    for recipe in USER_RECIPES:
        assert recipe.script.rstrip().endswith("likeness demo"), recipe.name


@pytest.mark.parametrize("recipe", USER_RECIPES, ids=lambda r: r.name)
def test_readme_recipe_installs_without_a_compiler_and_runs_the_demo(recipe, release, sandbox):
    if "pip install" in recipe.script and not FULL:
        pytest.skip("the pip recipe downloads ~400 MB from the index: LIKENESS_TEST_INSTALL_FULL=1 runs it")
    shutil.copy(release.wheel, sandbox.media)  # the recipe that installs "./<wheel>" finds it here
    script = localize(recipe.script, release)
    if not FULL:
        script = re.sub(r"likeness demo$", "likeness --version", script, flags=re.M)
    proc = sandbox.run(script)
    assert proc.returncode == 0, f"{script}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    sandbox.assert_no_compiler_ran(proc)
    if FULL:
        assert (sandbox.media / "likeness-report" / "report.html").is_file()
        results = json.loads((sandbox.media / "likeness-report" / "results.json").read_text())
        assert results["recordings"], "the demo scanned nothing"
    else:
        assert f"likeness {VERSION}" in proc.stdout
    if "uvx " in recipe.script:
        return  # uvx keeps its environment in uv's cache, not in the sandbox
    (site,) = installed_site_packages(sandbox)
    assert list(site.glob("dlib_bin-*.dist-info")) and not list(site.glob("dlib-*.dist-info"))
    assert not (site / "torch").exists()
    assert len(list((site / "scanner" / "sample_data" / "recordings").iterdir())) == len(
        list((SAMPLE_DATA / "recordings").iterdir())), "the demo's sample recordings are not installed"
    assert (site / "scanner" / "sample_data" / "consent.yaml").is_file()


def test_install_files_match_the_lock_and_pyproject():
    """install/requirements.txt is uv.lock's export, install/overrides.txt is [tool.uv]'s overrides."""
    exported = _run([UV, "export", "--locked", "--no-dev", "--no-emit-project", "--offline", "--quiet"],
                    cwd=REPO).stdout
    shipped = (REPO / "install" / "requirements.txt").read_text()

    def pins(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    assert pins(shipped) == pins(exported), (
        "install/requirements.txt is out of date with uv.lock: run "
        "`uv export --locked --no-dev --no-emit-project --output-file install/requirements.txt`")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    overrides = pins((REPO / "install" / "overrides.txt").read_text())
    assert overrides == pyproject["tool"]["uv"]["override-dependencies"]


def test_the_wheel_holds_every_module_of_the_package(release):
    """Every module under scanner/ ships in the wheel (a sub-package left out of pyproject's list
    would install a tool whose commands fail on import)."""
    import zipfile

    shipped = set(zipfile.ZipFile(release.wheel).namelist())
    modules = {path.relative_to(REPO).as_posix() for path in (REPO / "scanner").rglob("*.py")}
    assert modules and modules <= shipped, sorted(modules - shipped)


def test_version_is_single_sourced_and_released_in_the_changelog(release):
    """`likeness --version`, the wheel's metadata and the CHANGELOG all carry scanner.__version__."""
    assert f"\n## [{VERSION}]" in (REPO / "CHANGELOG.md").read_text()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert release.wheel.name.startswith(f"likeness_scanner-{VERSION}-")
    proc = _run([sys.executable, "-m", "scanner", "--version"])
    assert proc.stdout.strip() == f"likeness {VERSION}"


# --- action.yml -------------------------------------------------------------------------------------

@dataclass
class ActionRun:
    """What a workflow would see: the job's exit code, the action's outputs, the upload steps that ran."""

    exit_code: int
    outputs: dict[str, str]
    uploads: dict[str, dict[str, str]]  # the `uses:` of each step that ran, with its evaluated `with:`
    log: str


class Expressions:
    """The `${{ }}` expressions action.yml uses: inputs.*, github.action_path, steps.*.outputs.*,
    compared with == and != to strings and joined with && and ||."""

    REFERENCE = re.compile(r"\b(inputs\.[\w-]+|github\.action_path|steps\.[\w-]+\.outputs\.[\w-]+)")

    def __init__(self, inputs: dict[str, str], action_path: Path):
        self.inputs, self.action_path, self.steps = inputs, action_path, {}

    def value(self, reference: str) -> str:
        parts = reference.split(".")
        if parts[0] == "inputs":
            return self.inputs[parts[1]]
        if parts[0] == "github":
            return str(self.action_path)
        return self.steps.get(parts[1], {}).get(parts[3], "")

    def substitute(self, text: str) -> str:
        return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: self.value(m.group(1)), str(text))

    def condition(self, expression: str) -> bool:
        python = self.REFERENCE.sub(lambda m: repr(self.value(m.group(1))), expression)
        python = python.replace("&&", " and ").replace("||", " or ")
        assert re.fullmatch(r"[\s'\w.,/:=!()-]*", python.replace(" and ", " ").replace(" or ", " ")), python
        return bool(eval(python, {"__builtins__": {}}, {}))  # only string literals and comparisons remain


def run_action(sandbox: Sandbox, release: Release, given: dict[str, str], env: dict[str, str] | None = None
               ) -> ActionRun:
    """action.yml's steps as the runner executes a composite action: inputs filled from their defaults,
    each `run:` through `bash --noprofile --norc -eo pipefail`, GITHUB_OUTPUT and GITHUB_PATH honoured,
    a step without `if:` skipped after a failure. `uses:` steps are recorded, not run."""
    action = yaml.safe_load((release.source / "action.yml").read_text())
    unknown = set(given) - set(action["inputs"])
    assert not unknown, f"action.yml has no inputs {unknown}"
    inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()} | given
    expressions = Expressions(inputs, release.source)
    env = {**sandbox.env, **(env or {})}
    exit_code, uploads, log = 0, {}, []
    for index, step in enumerate(action["runs"]["steps"]):
        condition = step.get("if")
        if exit_code != 0 or (condition and not expressions.condition(condition)):
            continue
        if "uses" in step:
            uploads[step["uses"].split("@")[0]] = {k: expressions.substitute(v) for k, v in step["with"].items()} \
                if "with" in step else {}
            continue
        files = {name: sandbox.root / f"github-{name}-{index}" for name in ("output", "path")}
        for f in files.values():
            f.write_text("")
        step_env = {k: expressions.substitute(v) for k, v in step.get("env", {}).items()}
        assert "${{" not in step["run"], f"step {step['name']!r}: inputs belong in env:, not in the script"
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                              cwd=sandbox.media, capture_output=True, text=True, timeout=RECIPE_TIMEOUT,
                              env={**env, **step_env, "GITHUB_ACTION_PATH": str(release.source),
                                   "GITHUB_WORKSPACE": str(sandbox.media),
                                   "GITHUB_OUTPUT": str(files["output"]), "GITHUB_PATH": str(files["path"])})
        log.append(f"--- {step['name']} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}")
        sandbox.assert_no_compiler_ran(proc)
        exit_code = proc.returncode
        if "id" in step:
            lines = files["output"].read_text().splitlines()
            expressions.steps[step["id"]] = dict(line.split("=", 1) for line in lines if "=" in line)
        for directory in reversed(files["path"].read_text().split()):
            env["PATH"] = directory + os.pathsep + env["PATH"]
    outputs = {name: expressions.substitute(spec["value"]) for name, spec in action["outputs"].items()}
    return ActionRun(exit_code, outputs, uploads, "\n".join(log))


@pytest.fixture(scope="module")
def action_sandbox(tmp_path_factory) -> Sandbox:
    """One runner for the action's cases: later runs reuse the scan database, as a cached runner would."""
    root = tmp_path_factory.mktemp("runner")
    env, log = _user_env(root)
    _media_folder(root / "media")
    return Sandbox(root, env, log)


def test_docs_workflow_fails_the_job_on_findings_and_keeps_sarif_junit_and_html(release, action_sandbox):
    """docs/ci.md's workflow, with `formats` left without sarif: upload-sarif (default true) adds it."""
    (step,) = [s for s in ci_examples()["github"]["jobs"]["likeness"]["steps"] if "/likeness@" in s.get("uses", "")]
    inputs = {name: str(value) for name, value in step["with"].items()}
    inputs["formats"] = ",".join(f for f in inputs["formats"].split(",") if f != "sarif")
    run = run_action(action_sandbox, release, inputs)
    assert run.exit_code == 1, run.log  # two unknown faces in the photo, high severity
    out = action_sandbox.media / "likeness-report"
    assert run.outputs == {"exit-code": "1", "report-dir": "likeness-report",
                           "sarif-file": "likeness-report/results.sarif"}, run.log
    sarif = json.loads((out / "results.sarif").read_text())  # added because upload-sarif defaults to true
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    assert ET.parse(out / "junit.xml").getroot().find(".//failure") is not None
    assert "<html" in (out / "report.html").read_text()[:2000].lower()
    assert run.uploads["github/codeql-action/upload-sarif"]["sarif_file"] == "likeness-report/results.sarif"
    assert run.uploads["actions/upload-artifact"]["path"] == "likeness-report"
    assert f"likeness {VERSION}" in run.log


def test_action_installs_a_release_by_version_and_passes_below_fail_on(release, action_sandbox):
    index = {"UV_FIND_LINKS": str(release.wheel.parent)}  # the package index, as far as this machine goes
    run = run_action(action_sandbox, release, {"paths": "recordings\n", "consent": "consent.yaml",
                                                "fail-on": "none", "formats": "json", "upload-sarif": "false",
                                                "version": VERSION, "out": "gate"}, env=index)
    assert run.exit_code == 0, run.log
    assert json.loads((action_sandbox.media / "gate" / "results.json").read_text())["findings"]
    assert not (action_sandbox.media / "gate" / "results.sarif").exists()
    assert "github/codeql-action/upload-sarif" not in run.uploads
    assert run.uploads["actions/upload-artifact"]["path"] == "gate"


def test_action_exits_2_on_a_missing_consent_file_without_uploading_sarif(release, action_sandbox):
    run = run_action(action_sandbox, release, {"paths": "recordings", "consent": "no-such-consent.yaml",
                                                "out": "broken"})
    assert run.exit_code == 2, run.log
    assert "no-such-consent.yaml" in run.log
    assert "github/codeql-action/upload-sarif" not in run.uploads


def test_docs_gitlab_job_installs_into_an_empty_repository_and_fails_on_findings(release, action_sandbox):
    """docs/ci.md's GitLab job, its script lines in one shell as the runner runs them (set -e). The
    image's `pip install uv` runs only with LIKENESS_TEST_INSTALL_FULL=1, in a fresh venv (it downloads)."""
    job = ci_examples()["gitlab"]["likeness"]
    variables = {name: localize(str(value), release) for name, value in job["variables"].items()}
    script = [localize(line, release) for line in job["script"]]
    env = {**variables, "UV_TOOL_DIR": str(action_sandbox.root / "gitlab-tools"),
           "UV_TOOL_BIN_DIR": str(action_sandbox.root / "gitlab-bin")}
    assert re.fullmatch(r"python -m pip install uv", script[0]), script[0]
    if FULL:
        _run([sys.executable, "-m", "venv", str(action_sandbox.root / "job-python")])
        env["PATH"] = f"{action_sandbox.root / 'job-python' / 'bin'}{os.pathsep}{action_sandbox.env['PATH']}"
    else:
        script = script[1:]  # the runner's uv is on PATH
    proc = action_sandbox.run("\n".join(script), env=env)
    action_sandbox.assert_no_compiler_ran(proc)
    assert proc.returncode == 1, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"  # the gate fails the job
    for path in job["artifacts"]["paths"]:
        assert (action_sandbox.media / path).is_dir()
    junit = ET.parse(action_sandbox.media / job["artifacts"]["reports"]["junit"])
    assert junit.getroot().find(".//failure") is not None


# --- the Dockerfile ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [Instruction(*(text.split(None, 1) + [""])[:2]) for text in logical]


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in (pattern, pattern.replace("**/", ""))):
            excluded = not negated
    return excluded


def test_dockerfile_steps_build_a_working_non_root_image(release, sandbox):
    """The Dockerfile's instructions, emulated in a scratch root: COPY from the build context less
    .dockerignore, ENV and WORKDIR with the image's paths under the scratch root, and every RUN as
    written except the one that adds the image's user (it would add one to this machine)."""
    context = release.source
    ignore = [line.strip() for line in (context / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    image = sandbox.root / "image"

    def in_image(text: str) -> str:
        return re.sub(r"(?<![\w.])/(app|work)\b", lambda m: str(image / m.group(1)), text)

    env = {k: v for k, v in sandbox.env.items() if k != "UV_TOOL_BIN_DIR"}
    cwd, user, skipped, entrypoint, bases = image, "root", [], [], []
    for step in dockerfile_instructions(context / "Dockerfile"):
        if step.keyword == "FROM":
            bases.append(step.arguments)
        elif step.keyword == "COPY" and step.arguments.startswith("--from="):
            assert "astral-sh/uv" in step.arguments  # uv itself; the sandbox has it on PATH
        elif step.keyword == "COPY":
            *sources, destination = shlex.split(step.arguments)
            for source in sources:
                assert (context / source).exists() and not dockerignored(source, ignore), source
                target = cwd / destination / (Path(source).name if destination.endswith("/") else "")
                if (context / source).is_dir():
                    for file in (context / source).rglob("*"):
                        name = file.relative_to(context).as_posix()
                        if file.is_file() and not dockerignored(name, ignore):
                            (target / file.relative_to(context / source)).parent.mkdir(parents=True, exist_ok=True)
                            shutil.copy2(file, target / file.relative_to(context / source))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(context / source, target)
        elif step.keyword == "ENV":
            for assignment in shlex.split(step.arguments):
                name, value = assignment.split("=", 1)
                env[name] = in_image(re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), value))
        elif step.keyword == "WORKDIR":
            cwd = Path(in_image(step.arguments))
            cwd.mkdir(parents=True, exist_ok=True)
        elif step.keyword == "RUN":
            command = re.sub(r"^(--mount=\S+\s+)+", "", step.arguments)
            if command.startswith("useradd "):
                skipped.append(command)
                continue
            run_env = env
            if not FULL:  # build time only: the image runs the same code either way
                command = command.replace("uv sync ", "uv sync --no-compile-bytecode ")
                run_env = {**{k: v for k, v in env.items() if k != "UV_COMPILE_BYTECODE"}, "UV_LINK_MODE": "hardlink"}
            proc = sandbox.run(in_image(command), cwd=cwd, env=run_env, shell=("sh", "-ec"))
            assert proc.returncode == 0, f"RUN {command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            sandbox.assert_no_compiler_ran(proc)
        elif step.keyword == "USER":
            user = step.arguments
        elif step.keyword in ("ENTRYPOINT", "CMD"):
            entrypoint = json.loads(step.arguments) if step.keyword == "ENTRYPOINT" else entrypoint
        else:
            pytest.fail(f"the test does not know the instruction {step.keyword}")
    assert bases == ["python:3.11-slim"] and sys.version_info[:2] == (3, 11)
    assert user not in ("root", "0") and len(skipped) == 1, (user, skipped)
    assert entrypoint == ["likeness"]

    # The image runs from its virtualenv alone: the scanner and the demo's data are installed into it.
    (site,) = (image / "app" / ".venv" / "lib").glob("python3.*/site-packages")
    assert (site / "scanner" / "sample_data" / "consent.yaml").is_file()
    assert list(site.glob("dlib_bin-*.dist-info")) and not list(site.glob("dlib-*.dist-info"))
    shutil.rmtree(image / "app" / "scanner")  # nothing may run from the copied sources
    work = image / "work"
    for item in sandbox.media.iterdir():  # `docker run -v "$PWD:/work"` of the user's media folder
        shutil.copytree(item, work / item.name) if item.is_dir() else shutil.copy2(item, work)

    # The README's container commands: `docker build` is the emulation above, each `docker run` runs here.
    (readme,) = [r for r in readme_recipes() if r.section == "Container"]
    commands = [shlex.split(line) for line in readme.script.replace("\\\n", " ").splitlines()
                if line.strip() and not line.startswith("#")]
    assert commands[0] == ["docker", "build", "-t", "likeness", "."] and len(commands) > 1
    for words in commands[1:]:
        assert words[:2] == ["docker", "run"], words
        arguments = words[words.index("likeness") + 1:]
        if arguments == ["demo"] and not FULL:
            arguments = ["--version"]
        proc = sandbox.run(shlex.join([*entrypoint, *arguments]), cwd=work, env=env)
        sandbox.assert_no_compiler_ran(proc)
        if arguments == ["--version"]:
            assert proc.returncode == 0 and proc.stdout.strip() == f"likeness {VERSION}", proc.stderr
        elif arguments == ["demo"]:
            assert proc.returncode == 0 and (work / "likeness-report" / "report.html").is_file(), proc.stderr
        else:
            assert arguments[0] == "scan" and proc.returncode == 1, proc.stderr  # unknown faces, high
            out = work / arguments[arguments.index("--out") + 1]
            expected = {"html": "report.html", "sarif": "results.sarif", "junit": "junit.xml"}
            formats = arguments[arguments.index("--format") + 1].split(",")
            assert {expected[f] for f in formats} <= {p.name for p in out.iterdir()}
