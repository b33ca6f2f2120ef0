"""environment.yml (conda) lists the same packages as pyproject.toml, at the versions uv.lock pins."""

from __future__ import annotations

import re
import tomllib

import yaml


def name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement.strip()).group(0).lower().replace("_", "-")


def conda_packages(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    return conda, [p for p in pip if not p.startswith("-e")]


def test_same_packages_and_locked_versions(root):
    project = tomllib.loads((root / "pyproject.toml").read_text())
    wanted = {name(d) for d in project["project"]["dependencies"] + project["dependency-groups"]["dev"]}
    conda, pip = conda_packages(root)
    listed = {name(p) for p in pip}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
    lock = tomllib.loads((root / "uv.lock").read_text())
    locked: dict[str, set[str]] = {}
    for package in lock["package"]:
        locked.setdefault(package["name"], set()).add(package["version"])
    for requirement in pip:
        pkg, version = requirement.split("==")
        assert version in locked[name(pkg)], f"{pkg}=={version} is not what uv.lock pins ({locked[name(pkg)]})"
    python = next(c for c in conda if c.startswith("python"))
    assert python.split("=")[1].startswith("3.11")


def test_torch_and_torchvision_are_a_matched_pair():
    import torch
    import torchvision
    from torchvision.ops import nms

    keep = nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11]]), torch.tensor([0.9, 0.8]), 0.5)
    assert keep.tolist() == [0]
    assert torchvision.__version__.split("+")[0] != ""


def test_every_source_file_is_tracked_by_git(root):
    """A fresh clone must hold the whole package: nothing under src/, tests/ or notebooks/ is ignored."""
    import subprocess

    out = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "src", "tests",
                          "notebooks", "params"], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        import pytest

        pytest.skip("not a git checkout")
    ignored = [p for p in out.stdout.split() if p.endswith((".py", ".yaml", ".toml")) and "__pycache__" not in p]
    assert not ignored, f"ignored by .gitignore, so missing from a clone: {ignored}"
