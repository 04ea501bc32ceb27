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

By default (about a minute of CPU) installs run offline from uv's cache, the pip recipe is left out
(it downloads ~400 MB: about 4 minutes and 55 s of CPU here), the Dockerfile's two uv settings that
only cost build time (bytecode compilation, copying instead of hard links) are switched off, and each
`likeness demo` (~50 s of CPU per install) becomes `likeness --version` plus a check that the sample
data it scans is installed; scans of the scratch media folder exercise the detectors instead.
LIKENESS_TEST_INSTALL_FULL=1 runs every recipe exactly as written, pip and demo included.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner import __version__
from tests.conftest import REPO, SAMPLE_DATA

FULL = bool(os.environ.get("LIKENESS_TEST_INSTALL_FULL"))
UV = os.environ.get("UV") or shutil.which("uv")
pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed (scripts/test installs it)")

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
        return f"{self.section}: {first[:60]}"


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


def test_version_is_single_sourced_and_released_in_the_changelog(release):
    """`likeness --version`, the wheel's metadata and the CHANGELOG all carry scanner.__version__."""
    assert f"\n## [{VERSION}]" in (REPO / "CHANGELOG.md").read_text()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert release.wheel.name.startswith(f"likeness_scanner-{VERSION}-")
    proc = _run([sys.executable, "-m", "scanner", "--version"])
    assert proc.stdout.strip() == f"likeness {VERSION}"
