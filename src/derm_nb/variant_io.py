"""A variant's result as a file that `torch.load(weights_only=True)` reads: plain data and tensors, never pickled code.

`encode` turns what a variant returns (the package's dataclasses, NumPy arrays and scalars, pandas frames
as parquet bytes, tensors, paths, nested dicts, lists, tuples and sets) into builtins and tensors; a model
travels as its state dict and comes back through a `rebuild` hook that builds a fresh one of the same
architecture. `decode` inverts it. Anything else is refused by name, on the way out and on the way in.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from derm_nb.artifacts import write_atomic

TAG = "__codec__"
PLAIN = (type(None), bool, int, float, str)
PACKAGE = "derm_nb"  # the only package whose dataclasses a result file may name

Rebuild = Callable[[], nn.Module]


class VariantIOError(ValueError):
    """A result that cannot be written as plain data, or a file that is not a readable variant result."""


def save_result(path: str | os.PathLike[str], result: Any) -> Path:
    """Write `result` to `path` atomically as plain data and tensors."""
    encoded = encode(result)
    return write_atomic(path, lambda tmp: torch.save(encoded, tmp))


def load_result(path: str | os.PathLike[str], rebuild: Rebuild | None = None) -> Any:
    """Read a result written by `save_result` with `weights_only=True`; models come back through `rebuild`."""
    try:
        data = torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise VariantIOError(f"{path}: not a variant result file that torch reads with weights_only=True: {err}") from err
    return decode(data, rebuild, where=str(path))


def encode(value: Any, where: str = "result") -> Any:
    """`value` as builtins and tensors; a TypeError names the first part (by its path from `where`) that cannot be."""
    if type(value) in PLAIN or isinstance(value, torch.Tensor) or _is_state_dict(value):
        return value
    if type(value) in (list, tuple):  # exact types: a subclass (a namedtuple, a defaultdict) would not come back
        items = [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if type(value) is list else tuple(items)
    if type(value) is dict:
        return _encode_dict(value, where)
    if type(value) in (set, frozenset):
        return {TAG: type(value).__name__, "items": [encode(v, f"{where}{{}}") for v in value]}
    if type(value) is np.ndarray:
        return _encode_array(value, where)
    if isinstance(value, np.generic):
        return {TAG: "scalar", "array": _encode_array(np.asarray(value), where)}
    if type(value) in (pd.DataFrame, pd.Series):
        return _encode_frame(value, where)
    if isinstance(value, PurePath):
        return {TAG: "path", "value": str(value)}
    if isinstance(value, nn.Module):
        return _encode_module(value, where)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dataclass(value, where)
    raise TypeError(f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be stored as plain data "
                    "(variant_io stores builtins, tensors, arrays, frames, paths, models and derm_nb dataclasses)")


def decode(data: Any, rebuild: Rebuild | None = None, where: str = "result") -> Any:
    """The value `encode` was given; each model is a fresh `rebuild()` loaded with its state (a VariantIOError
    names the part that cannot be read)."""
    if isinstance(data, list):
        return [decode(v, rebuild, f"{where}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, tuple):
        return tuple(decode(v, rebuild, f"{where}[{i}]") for i, v in enumerate(data))
    if not isinstance(data, dict) or _is_state_dict(data):
        return data
    if TAG not in data:
        return {k: decode(v, rebuild, f"{where}[{k!r}]") for k, v in data.items()}
    kind = data[TAG]
    if kind not in DECODERS:
        raise VariantIOError(f"{where}: unknown kind {kind!r} (a file written by another version, or not by variant_io)")
    return DECODERS[kind](data, rebuild, where)


def _is_state_dict(value: Any) -> bool:
    """A module's state dict (an OrderedDict of tensors by name): torch stores it as it is."""
    return (type(value) is OrderedDict and TAG not in value
            and all(type(k) is str and isinstance(v, torch.Tensor) for k, v in value.items()))


def _encode_dict(value: dict, where: str) -> dict:
    if all(type(k) is str for k in value) and TAG not in value:
        return {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    return {TAG: "dict", "items": [(encode(k, f"{where} key {k!r}"), encode(v, f"{where}[{k!r}]"))
                                   for k, v in value.items()]}


def _encode_array(array: np.ndarray, where: str) -> dict:
    if array.dtype.hasobject:
        return {TAG: "objects", "shape": list(array.shape),
                "items": [encode(v, f"{where}[{i}]") for i, v in enumerate(array.ravel().tolist())]}
    raw = np.ascontiguousarray(array).tobytes()
    return {TAG: "array", "dtype": np.lib.format.dtype_to_descr(array.dtype), "shape": list(array.shape),
            "bytes": torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)}


def _encode_frame(frame: pd.DataFrame | pd.Series, where: str) -> dict:
    """Parquet bytes, kept only if they read back equal (dtypes, index and values exactly)."""
    table = frame.to_frame(name="series") if isinstance(frame, pd.Series) else frame
    buffer = io.BytesIO()
    try:
        table.to_parquet(buffer)
        pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(buffer.getvalue())), table, check_exact=True)
    except (TypeError, ValueError, AssertionError, ImportError) as err:
        raise TypeError(f"{where}: this frame does not survive parquet unchanged, so it cannot be stored: {err}") from err
    encoded = {TAG: "frame", "parquet": torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)}
    if isinstance(frame, pd.Series):
        encoded.update({TAG: "series", "name": encode(frame.name, f"{where}.name")})
    return encoded


def _encode_module(module: nn.Module, where: str) -> dict:
    """The state dict, with what it leaves out: each submodule's train/eval mode, the frozen parameters, the device."""
    state = module.state_dict()
    odd = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise TypeError(f"{where}: the model's state holds entries that are not tensors: {odd}")
    device = next((t.device for t in state.values()), torch.device("cpu"))
    return {TAG: "module", "class": _qualified(type(module)), "state": state, "device": str(device),
            "training": {name: m.training for name, m in module.named_modules()},
            "frozen": [name for name, p in module.named_parameters() if not p.requires_grad]}


def _encode_dataclass(value: Any, where: str) -> dict:
    cls = type(value)
    name = _qualified(cls)
    if _dataclass_named(name, where) is not cls:
        raise TypeError(f"{where}: {name} is not importable by that name from {PACKAGE}, so it could not be read back")
    return {TAG: "dataclass", "type": name,
            "fields": {f.name: encode(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}}


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _dataclass_named(name: str, where: str) -> type:
    """The dataclass `module:qualname`, looked up only inside the derm_nb package."""
    module, _, qualname = name.partition(":")
    if module != PACKAGE and not module.startswith(f"{PACKAGE}."):
        raise VariantIOError(f"{where}: refuses the class {name!r}: only {PACKAGE}'s dataclasses are read back")
    try:
        found: Any = importlib.import_module(module)
    except ImportError as err:
        raise VariantIOError(f"{where}: the module of {name!r} cannot be imported: {err}") from err
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and dataclasses.is_dataclass(found)):
        raise VariantIOError(f"{where}: {name!r} names no dataclass in {PACKAGE}")
    return found


def _decode_dataclass(data: dict, rebuild: Rebuild | None, where: str) -> Any:
    """Fields set as they were stored (no __init__ or __post_init__ runs), frozen dataclasses included."""
    cls = _dataclass_named(data["type"], where)
    value = cls.__new__(cls)
    stored = data["fields"]
    for f in dataclasses.fields(cls):
        if f.name not in stored:
            raise VariantIOError(f"{where}: the stored {data['type']} lacks the field {f.name!r}")
        object.__setattr__(value, f.name, decode(stored[f.name], rebuild, f"{where}.{f.name}"))
    return value


def _decode_module(data: dict, rebuild: Rebuild | None, where: str) -> nn.Module:
    if rebuild is None:
        raise VariantIOError(f"{where}: holds a model ({data['class']}) but no `rebuild` hook was given to build one")
    module = rebuild()
    if _qualified(type(module)) != data["class"]:
        raise VariantIOError(f"{where}: `rebuild` built a {_qualified(type(module))}, the file holds a {data['class']}")
    module.load_state_dict(data["state"], assign=True)  # the stored tensors themselves: their memory format too
    module.to(torch.device(data["device"]))
    for name, sub in module.named_modules():
        sub.training = data["training"].get(name, sub.training)
    frozen = set(data["frozen"])
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(name not in frozen)
    return module


def _decode_array(data: dict, rebuild: Rebuild | None, where: str) -> np.ndarray:
    dtype = np.lib.format.descr_to_dtype(data["dtype"])
    return np.frombuffer(data["bytes"].numpy().tobytes(), dtype=dtype).reshape(data["shape"]).copy()


def _decode_objects(data: dict, rebuild: Rebuild | None, where: str) -> np.ndarray:
    array = np.empty(len(data["items"]), dtype=object)
    array[:] = [decode(v, rebuild, f"{where}[{i}]") for i, v in enumerate(data["items"])]
    return array.reshape(data["shape"])


def _decode_dict(data: dict, rebuild: Rebuild | None, where: str) -> dict:
    return {decode(k, rebuild, f"{where} key {i}"): decode(v, rebuild, f"{where}[{i}]")
            for i, (k, v) in enumerate(data["items"])}


def _decode_frame(data: dict, rebuild: Rebuild | None, where: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data["parquet"].numpy().tobytes()))


def _decode_series(data: dict, rebuild: Rebuild | None, where: str) -> pd.Series:
    return _decode_frame(data, rebuild, where)["series"].rename(decode(data["name"], rebuild, f"{where}.name"))


DECODERS: dict[str, Callable[[dict, Rebuild | None, str], Any]] = {
    "dict": _decode_dict,
    "set": lambda d, r, w: {decode(v, r, f"{w}{{}}") for v in d["items"]},
    "frozenset": lambda d, r, w: frozenset(decode(v, r, f"{w}{{}}") for v in d["items"]),
    "array": _decode_array,
    "objects": _decode_objects,
    "scalar": lambda d, r, w: _decode_array(d["array"], r, w)[()],
    "frame": _decode_frame,
    "series": _decode_series,
    "path": lambda d, r, w: Path(d["value"]),
    "module": _decode_module,
    "dataclass": _decode_dataclass,
}
