"""environment.yml (conda) lists the same packages as pyproject.toml, at the versions uv.lock pins."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest
import yaml


def name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement.strip()).group(0).lower().replace("_", "-")


def disagreements(pyproject: str, environment: str, lock: str) -> list[str]:
    """Every way environment.yml differs from pyproject.toml's packages and uv.lock's versions."""
    project = tomllib.loads(pyproject)
    wanted = {name(d) for d in project["project"]["dependencies"] + project["dependency-groups"]["dev"]}
    env = yaml.safe_load(environment)
    pip = [p for d in env["dependencies"] if isinstance(d, dict) for p in d["pip"] if not p.startswith("-e")]
    listed = {name(p) for p in pip}
    problems = [f"only in pyproject.toml: {n}" for n in sorted(wanted - listed)]
    problems += [f"only in environment.yml: {n}" for n in sorted(listed - wanted)]
    locked: dict[str, set[str]] = {}
    for package in tomllib.loads(lock)["package"]:
        locked.setdefault(package["name"], set()).add(package["version"])
    for requirement in pip:
        if "==" not in requirement:
            problems.append(f"not pinned in environment.yml: {requirement}")
            continue
        pkg, version = requirement.split("==")
        if version not in locked.get(name(pkg), set()):
            problems.append(f"{pkg}=={version} is not what uv.lock pins ({sorted(locked.get(name(pkg), []))})")
    return problems


@pytest.fixture(scope="module")
def files(root):
    return tuple((root / f).read_text() for f in ("pyproject.toml", "environment.yml", "uv.lock"))


def test_environment_yml_agrees_with_pyproject_and_lock(files):
    assert disagreements(*files) == []


@pytest.mark.parametrize("edit, expected", [
    (lambda env: env.replace("      - seaborn==", "      - seaborn-extra=="), "only in pyproject.toml: seaborn"),
    (lambda env: env.replace("      - torch==2.15.0", "      - torch==2.14.0"), "torch==2.14.0 is not what uv.lock pins"),
    (lambda env: env.replace("      - tqdm==", "      - tqdm>="), "not pinned in environment.yml: tqdm"),
])
def test_the_check_fails_when_the_lists_drift(files, edit, expected):
    pyproject, environment, lock = files
    assert any(expected in p for p in disagreements(pyproject, edit(environment), lock))


def test_conda_python_matches(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.split("=")[1].startswith("3.11")


def test_torch_and_torchvision_are_a_matched_pair():
    import torch
    from torchvision.ops import nms

    keep = nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11]]), torch.tensor([0.9, 0.8]), 0.5)
    assert keep.tolist() == [0]


def test_every_source_file_is_tracked_by_git(root):
    """A fresh clone must hold the whole package: nothing under src/, tests/ or notebooks/ is ignored."""
    out = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "src", "tests",
                          "notebooks", "params"], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    ignored = [p for p in out.stdout.split() if p.endswith((".py", ".yaml", ".toml")) and "__pycache__" not in p]
    assert not ignored, f"ignored by .gitignore, so missing from a clone: {ignored}"
