"""Cheap input validation shared by the core modules.

Every helper raises :class:`~twolayer.errors.TwoLayerInputError` naming the
argument, saying what was wrong and what to do. The checks are O(size of the
input) (dtype, shape, vectorised ``np.isfinite``): safe on hot paths such as
losses evaluated on whole trajectories.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import TwoLayerInputError

__all__ = ["as_f64", "as_int", "as_float", "shape_str", "json_object_arg"]


def shape_str(shape) -> str:
    """``(k, d)``-style text for a shape whose entries may be names or ``None`` (any)."""
    inner = ", ".join("..." if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def as_f64(a, name: str, ndim: int | None = None, shape: tuple | None = None,
           what: str = "") -> np.ndarray:
    """``a`` as a finite float64 array, optionally of ``ndim`` dimensions and ``shape``.

    ``shape`` entries that are ``None`` match any length. ``what`` describes the
    expected array in messages (e.g. "(k, d) extractor").
    """
    want = what or (f"{ndim}-d array" if ndim is not None else "array")
    if a is None:
        raise TwoLayerInputError(name, "is None", f"pass a float {want}")
    if isinstance(a, str):
        raise TwoLayerInputError(name, f"is a string ({a!r})", f"pass a float {want}")
    if np.iscomplexobj(a):
        raise TwoLayerInputError(name, "is complex", f"pass a real float {want} (the model is real)")
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TwoLayerInputError(name, f"cannot convert to a float64 array ({exc})",
                                 f"pass a float {want}") from exc
    if ndim is not None and arr.ndim != ndim:
        raise TwoLayerInputError(name, f"expected a {want}, got shape {arr.shape}",
                                 f"pass a {ndim}-d array")
    if shape is not None:
        ok = len(shape) == arr.ndim and all(s is None or s == t for s, t in zip(shape, arr.shape))
        if not ok:
            raise TwoLayerInputError(name, f"shape {arr.shape}, expected {shape_str(shape)}"
                                     + (f" ({what})" if what else ""),
                                     f"pass an array of shape {shape_str(shape)}")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - np.count_nonzero(finite))
        raise TwoLayerInputError(name, f"contains {bad} NaN/inf entries", "pass finite values")
    return arr


def _is_bool(val) -> bool:
    return isinstance(val, (bool, np.bool_))


def as_int(val, name: str, minimum: int | None = None) -> int:
    """``val`` as a Python int (not a bool, not a float), at least ``minimum``."""
    if val is None:
        raise TwoLayerInputError(name, "is None", "pass an int")
    if _is_bool(val):
        raise TwoLayerInputError(name, f"is a bool ({val!r}), not an int", "pass an int")
    if isinstance(val, np.ndarray) and val.ndim == 0 and val.dtype.kind in "iu":
        val = val.item()
    if not isinstance(val, numbers.Integral):
        hint = f"pass int({val!r})" if (isinstance(val, numbers.Real) and math.isfinite(float(val))
                                         and float(val).is_integer()) else "pass an int"
        raise TwoLayerInputError(name, f"must be an int, got {type(val).__name__} {val!r}", hint)
    val = int(val)
    if minimum is not None and val < minimum:
        raise TwoLayerInputError(name, f"must be >= {minimum}, got {val}",
                                 f"pass an int >= {minimum}")
    return val


def as_float(val, name: str) -> float:
    """``val`` as a finite Python float (not None, not a bool, not a string)."""
    if val is None:
        raise TwoLayerInputError(name, "is None", "pass a finite float")
    if _is_bool(val):
        raise TwoLayerInputError(name, f"is a bool ({val!r}), not a number", "pass a finite float")
    if isinstance(val, np.ndarray) and val.ndim == 0 and val.dtype.kind in "iuf":
        val = val.item()
    if not isinstance(val, numbers.Real):
        raise TwoLayerInputError(name, f"must be a real number, got {type(val).__name__} {val!r}",
                                 "pass a finite float")
    x = float(val)
    if not math.isfinite(x):
        raise TwoLayerInputError(name, f"must be finite, got {x}", "pass a finite float")
    return x


def json_object_arg(text: str) -> dict:
    """argparse type of the ``--set`` options (preset overrides): a JSON object, else a usage
    error (exit 2) that quotes the text."""
    import argparse
    import json
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value
