"""Parameter profiles: load `params/<profile>.yaml`, layer a user file on top, validate every key.

A profile is a YAML mapping with two sections, and an optional third:

    common:          # injected into every notebook that declares the key
      seed: 0
    notebooks:
      00_data:       # injected into that notebook only
        synth_n_patients: 40
    real_data:       # layered over `notebooks` for a chapter that reads a real folder (not the generator)
      06_architectures:
        image_size: 224

The schema is each notebook's own `parameters` cell (read with `papermill.inspect_notebook`):
a key no notebook declares, or a value whose type differs from the declared default, is an
error that names the file and the key.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

PROFILES = ("smoke", "default", "full")
SECTIONS = ("common", "notebooks", "real_data")
PER_NOTEBOOK = ("notebooks", "real_data")   # sections keyed by notebook
FLAGS = ("paper_settings",)  # top-level booleans: `paper_settings: true` starts from the studies' paper cards


class ParameterError(ValueError):
    """A parameter file is malformed, names an unknown key, or gives a value of the wrong type."""


@dataclass(frozen=True)
class Declared:
    """One parameter a notebook declares: its name and the Python value of its default."""

    name: str
    default: Any

    def accepts(self, value: Any) -> bool:
        expected = self.default
        if expected is None or value is None:
            return True
        if isinstance(expected, bool) or isinstance(value, bool):
            return isinstance(expected, bool) and isinstance(value, bool)
        if isinstance(expected, float):
            return isinstance(value, (int, float))
        if isinstance(expected, (list, tuple)):
            return isinstance(value, (list, tuple))
        return isinstance(value, type(expected))

    @property
    def type_name(self) -> str:
        return "any" if self.default is None else type(self.default).__name__


@dataclass
class Profile:
    """A validated parameter set: the common keys and the per-notebook keys, with their sources."""

    name: str
    common: dict[str, Any] = field(default_factory=dict)
    notebooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    real_data: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def for_notebook(self, stem: str, declared: Mapping[str, Declared], real: bool = False) -> dict[str, Any]:
        """The parameters papermill injects into one notebook: common keys it declares, then its own, then
        (`real`: the chapter reads a real folder) its `real_data` keys."""
        values = {k: v for k, v in self.common.items() if k in declared}
        merge_values(values, self.notebooks.get(stem, {}))
        if real:
            merge_values(values, self.real_data.get(stem, {}))
        values["profile"] = self.name
        return values


def params_dir(root: Path) -> Path:
    return root / "params"


def read_param_file(path: Path) -> dict[str, Any]:
    """Read one parameter file and check its top-level shape."""
    if not path.is_file():
        raise ParameterError(f"{path}: parameter file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ParameterError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a mapping with 'common' and 'notebooks'")
    for key in data:
        if key not in (*SECTIONS, *FLAGS):
            raise ParameterError(f"{path}: unknown top-level key '{key}' (allowed: {', '.join((*SECTIONS, *FLAGS))})")
        if key in FLAGS and not isinstance(data[key], bool):
            raise ParameterError(f"{path}: '{key}' must be true or false, not {data[key]!r}")
    for section in SECTIONS:
        if not isinstance(data.get(section) or {}, dict):
            raise ParameterError(f"{path}: '{section}' must be a mapping")
    for section in PER_NOTEBOOK:
        for stem, values in (data.get(section) or {}).items():
            if not isinstance(values or {}, dict):
                raise ParameterError(f"{path}: {section}.{stem} must be a mapping")
    return data


def merge_values(into: dict[str, Any], values: Mapping[str, Any]) -> None:
    """Layer `values` over `into`; a mapping value (e.g. `data`, `datasets`) merges key by key."""
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), Mapping):
            into[key] = {**into[key], **value}
        else:
            into[key] = value


def _merge(profile: Profile, data: Mapping[str, Any], source: str) -> None:
    merge_values(profile.common, data.get("common") or {})
    for section in PER_NOTEBOOK:
        for stem, values in (data.get(section) or {}).items():
            merge_values(getattr(profile, section).setdefault(str(stem), {}), values or {})
            if section == "notebooks":   # a later layer's value wins over an earlier layer's real-data one
                for key in values or {}:
                    profile.real_data.get(str(stem), {}).pop(key, None)
    profile.sources.append(source)


def validate_file(data: Mapping[str, Any], source: str, declared: Mapping[str, Mapping[str, Declared]]) -> None:
    """Check every key of one parameter file against the notebooks' declared parameters."""
    every = {}
    for params in declared.values():
        every.update(params)
    for key, value in (data.get("common") or {}).items():
        if key == "profile":
            raise ParameterError(f"{source}: common.profile is set by the runner, not by a file")
        if key not in every:
            raise ParameterError(f"{source}: common.{key} is not a parameter of any notebook")
        for stem, params in declared.items():
            if key in params and not params[key].accepts(value):
                raise ParameterError(
                    f"{source}: common.{key} = {value!r} has type {type(value).__name__}, "
                    f"but {stem} declares it as {params[key].type_name}"
                )
    for section in PER_NOTEBOOK:
        for stem, values in (data.get(section) or {}).items():
            if stem not in declared:
                raise ParameterError(f"{source}: {section}.{stem} is not a notebook (known: {', '.join(declared)})")
            for key, value in (values or {}).items():
                if key not in declared[stem]:
                    raise ParameterError(f"{source}: {section}.{stem}.{key} is not a parameter of {stem}")
                if not declared[stem][key].accepts(value):
                    raise ParameterError(
                        f"{source}: {section}.{stem}.{key} = {value!r} has type {type(value).__name__}, "
                        f"but {stem} declares it as {declared[stem][key].type_name}"
                    )


def load_profile(
    root: Path,
    name: str,
    declared: Mapping[str, Mapping[str, Declared]],
    user_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    paper: Mapping[str, Mapping[str, Any]] | None = None,
) -> Profile:
    """Load `params/<name>.yaml`, then a user file, then command-line overrides; validate each layer.

    A profile file with `paper_settings: true` starts from `paper` ({notebook: {key: the paper's value}},
    from the studies' cards), so the file itself holds only what differs from the papers."""
    path = params_dir(root) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in params_dir(root).glob("*.yaml"))
        raise ParameterError(f"unknown profile '{name}': no {path} (known: {', '.join(known)})")
    profile = Profile(name=name)
    first = read_param_file(path)
    layers: list[tuple[dict[str, Any], str]] = [(first, str(path))]
    if first.get("paper_settings"):
        if paper is None:
            raise ParameterError(f"{path}: paper_settings is true, but no paper settings were given to load it")
        layers.insert(0, ({"notebooks": {stem: dict(v) for stem, v in paper.items()}}, "the studies' paper cards"))
    if user_file is not None:
        layers.append((read_param_file(Path(user_file)), str(user_file)))
    if overrides:
        layers.append(({"common": dict(overrides)}, "command line"))
    for data, source in layers:
        validate_file(data, source, declared)
        _merge(profile, copy.deepcopy(data), source)
    return profile


REAL_DATA_NOTE = "# on real data:"


def profile_facts(root: Path, name: str, real: bool = False) -> tuple[bool, str]:
    """Whether a profile starts from the paper cards, and what it is for: its file's first comment line,
    without the '# name:' lead, or on real data (`real`) its '# on real data:' header line where it has one;
    (False, "") for a profile with no file."""
    path = params_dir(root) / f"{name}.yaml"
    if not path.is_file():
        return False, ""
    header = list(itertools.takewhile(lambda line: line.startswith("#"), path.read_text(encoding="utf-8").splitlines()))
    note = header[0].lstrip("# ").removeprefix(f"{name}:").strip() if header else ""
    on_real = [line.removeprefix(REAL_DATA_NOTE).strip() for line in header if line.startswith(REAL_DATA_NOTE)]
    return bool(read_param_file(path).get("paper_settings")), on_real[0] if real and on_real else note


def parse_default(text: str) -> Any:
    """The Python value of a default as papermill reports it (source text); None if not a literal."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def declared_from_inspection(inspected: Mapping[str, Mapping[str, Any]]) -> dict[str, Declared]:
    """Turn `papermill.inspect_notebook` output into `Declared` entries."""
    return {name: Declared(name, parse_default(str(info.get("default")))) for name, info in inspected.items()}


def typed_parameters(cls: type[T], stem: str, parameters: Mapping[str, Any]) -> T:
    """A study's parameters dataclass `cls` from a chapter's parameters (every field by name; lists become
    tuples where the field is a tuple); a KeyError naming the chapter and the keys it lacks."""
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in parameters]
    if missing:
        raise KeyError(f"{stem}: {cls.__name__} needs the parameters {', '.join(missing)}, which the chapter lacks")
    return cls(**{n: tuple(v) if isinstance(v, list) else v for n, v in ((n, parameters[n]) for n in names)})


@dataclass(frozen=True)
class BackboneParams:
    """What the model chapters that train a named backbone declare alike: the seed, the device, and the backbone
    with its weights and their stated fallback. A study's parameters dataclass extends it."""

    seed: int
    device: str
    backbone: str
    weights: str
    weights_fallback: str
