"""The solver, exported (``jax.export``: serialized StableHLO) to disk, so that a new
process calls it without tracing diffrax in Python (issue 10 §1: "a new process starts warm").

JAX's persistent compilation cache (:mod:`twolayer._jaxcache`) skips only the XLA compile;
tracing ``diffrax.diffeqsolve`` and lowering it still took about 5 s in every new process.
Here the solve of :func:`twolayer._solve._make_solve` is exported once per key
(solver, max_steps, batched, k, m, padded number of save times, chunk) and written to
``<cache_dir()>/export/<hash>.jaxexport``; a later process deserializes it and calls it (its
XLA compile is then served by the persistent compilation cache). The folder is the one of
the compilation cache (``$TWOLAYER_JAX_CACHE``; ``off`` disables both).

The file name hashes the key, the versions of jax, jaxlib, diffrax, equinox, lineax and
optimistix, the backend, and the source of ``_solve.py``, ``_field.py`` and this module (a
changed vector field never loads a stale solver); the file repeats that header and is
checked on load, as are the exported platform and the input shapes. A corrupt, unreadable
or incompatible file is ignored: the solver is traced and exported again and the file
rewritten atomically (temporary file, then ``os.replace``); if the export itself fails, the
traced solver is used. diffrax's result codes are stored beside the solvers (``.json``), so a
warm process never imports diffrax. Serialization needs the ``flatbuffers`` package; without
it the cache holds XLA executables only and every process traces.

Equinox's runtime error checks (diffrax checks that the save times are increasing and lie in
[t0, t1]) are host callbacks, which ``jax.export`` cannot serialize ("serialization of
host_callbacks is not yet implemented"). While exporting, ``equinox.internal.error_if`` is
therefore traced with ``on_error="nan"`` (the check stays on the device and poisons the
output with NaN instead of raising), and :func:`check_times` makes the same two checks on the
host before every call and raises, like the traced solver. The arithmetic of the solve is
unchanged (tests/test_cache.py: bitwise equal to the traced solver). The patch is in place
only while an export traces (under a lock), and the export uses closures of its own, so
diffrax's jit caches never give the traced solver the NaN checks or the export the callbacks;
a diffrax solve traced by another thread at that very moment would get NaN checks too.

Counting: exporting traces the solver and counts in :func:`twolayer.compile_count`; loading
an exported solver from disk does not trace and does not count (it counts in
:func:`twolayer._jaxcache.load_count`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import tempfile
import threading
from pathlib import Path

from ._jaxcache import cache_dir, count_load

__all__ = ["exported_solver", "stored_codes", "check_times", "export_path", "clear_memory", "last_errors"]

FORMAT = 1
MAGIC = b"twolayer-jax-export\n"
N_IN, N_OUT = 11, 7
_LOCK = threading.Lock()
_MEMO: dict = {}          # key -> (Exported, compiled callable)
_ON_DISK: set = set()     # (folder, key) known to hold a valid file
_BROKEN: set = set()      # keys whose export failed in this process: trace instead
_ERRORS: list = []        # (key, what went wrong), newest last (for tests and debugging)
_SOURCES = ("_solve.py", "_field.py", "_export.py")


def _hash_sources() -> str:
    here = Path(__file__).resolve().parent
    src = hashlib.sha256()
    for name in _SOURCES:
        src.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return src.hexdigest()


# The source as imported (read now, not at the first solve, so that an edit made while a
# process runs cannot label its solver with the new source).
_SOURCE_HASH = _hash_sources()


@functools.lru_cache(maxsize=1)
def _fingerprint() -> dict:
    """Everything a stored solver depends on besides its key."""
    from importlib.metadata import PackageNotFoundError, version

    import jax
    vers = {}
    for pkg in ("jax", "jaxlib", "diffrax", "equinox", "lineax", "optimistix"):
        try:
            vers[pkg] = version(pkg)
        except PackageNotFoundError:
            vers[pkg] = None
    return dict(format=FORMAT, versions=vers, backend=jax.default_backend(), source=_SOURCE_HASH)


def _header(key: tuple) -> bytes:
    return json.dumps(dict(_fingerprint(), key=list(key)), sort_keys=True).encode()


def export_path(key: tuple, folder: Path | None = None) -> Path | None:
    """The file of ``key`` in ``folder`` (default :func:`cache_dir`; None when disabled)."""
    folder = cache_dir() if folder is None else folder
    if folder is None:
        return None
    name = hashlib.sha256(_header(key)).hexdigest()[:40]
    return Path(folder) / "export" / f"{name}.jaxexport"


def check_times(ts_pad, t1s) -> None:
    """diffrax's checks on the save times, made on the host (the exported solver cannot raise):
    ``ts`` increasing and inside [0, t1] for every job's t1."""
    import numpy as np
    ts = np.asarray(ts_pad, dtype=np.float64)
    if ts.size and np.any(ts[1:] < ts[:-1]):
        raise RuntimeError("saveat.ts must be increasing or decreasing.")
    t1 = np.asarray(t1s, dtype=np.float64)
    if ts.size and (np.any(ts[0] < 0.0) or np.any(ts[-1] > t1) or np.any(np.isnan(ts))):
        raise RuntimeError("saveat.ts must lie between t0 and t1.")


def _avals(key: tuple):
    import jax
    import jax.numpy as jnp
    solver, max_steps, batched, k, m, T, chunk = key
    lead = (chunk,) if batched else ()
    s = lambda *shape: jax.ShapeDtypeStruct(lead + shape, jnp.float64)
    return [s(m), s(m), s(k), s(k, m), jax.ShapeDtypeStruct((T,), jnp.float64)] + [s()] * (N_IN - 5)


def stored_codes(compute) -> dict:
    """diffrax's result codes, ``compute()``, kept beside the exported solvers (a warm process
    then does not import diffrax); computed and stored when missing or unreadable."""
    folder = cache_dir()
    with _LOCK:
        if "codes" in _MEMO:
            return dict(_MEMO["codes"])
        path = None if folder is None else export_path(("result_codes",), folder).with_suffix(".json")
        codes = None
        if path is not None:
            try:
                got = json.loads(path.read_text())
                if got.get("header") == _header(("result_codes",)).decode():
                    codes = {k: int(got["codes"][k]) for k in ("ok", "event", "max_steps")}
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                if not isinstance(exc, FileNotFoundError):
                    _note("result_codes", exc)
        if codes is None:
            codes = {k: int(v) for k, v in compute().items()}
            if path is not None:
                try:
                    body = json.dumps(dict(header=_header(("result_codes",)).decode(), codes=codes))
                    _atomic_write(path, body.encode())
                except OSError as exc:
                    _note("result_codes", exc)
        _MEMO["codes"] = codes
        return dict(codes)


def _export(key: tuple, traced_fn):
    """Trace ``traced_fn`` (the jitted solve) once and export it (error checks as NaN)."""
    import equinox.internal as eqxi
    import jax
    from jax import export
    original = eqxi.error_if
    eqxi.error_if = functools.partial(original, on_error="nan")
    try:
        with jax.enable_x64(True):
            return export.export(traced_fn)(*_avals(key))
    finally:
        eqxi.error_if = original


def _read(path: Path, key: tuple):
    from jax import export
    data = path.read_bytes()
    head = _header(key)
    if not data.startswith(MAGIC):
        raise ValueError("not a twolayer export file")
    rest = data[len(MAGIC):]
    n = int.from_bytes(rest[:8], "little")
    if rest[8:8 + n] != head:
        raise ValueError("written for another key, version, backend or source")
    return export.deserialize(bytearray(rest[8 + n:]))


def _write(path: Path, key: tuple, exp) -> None:
    head = _header(key)
    _atomic_write(path, MAGIC + len(head).to_bytes(8, "little") + head + bytes(exp.serialize()))


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same folder, then ``os.replace`` (readers never see
    a partial file; concurrent writers leave one whole file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o644)                   # readable like a normal cache file, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _compile(key: tuple, exp):
    """The exported solver, checked against ``key`` and compiled for this backend."""
    import jax
    if len(exp.in_avals) != N_IN or len(exp.out_avals) != N_OUT:
        raise ValueError(f"{len(exp.in_avals)} inputs / {len(exp.out_avals)} outputs, expected {N_IN} / {N_OUT}")
    want = _avals(key)
    for a, w in zip(exp.in_avals, want):
        if tuple(a.shape) != tuple(w.shape) or a.dtype != w.dtype:
            raise ValueError(f"input {a} does not match {w}")
    from jax import export
    platform = export.default_export_platform()
    if platform not in exp.platforms:
        raise ValueError(f"exported for {exp.platforms}, this backend is {platform}")
    with jax.enable_x64(True):
        return jax.jit(exp.call).lower(*want).compile()


def _note(key, exc) -> None:
    _ERRORS.append((key, f"{type(exc).__name__}: {exc}"[:500]))
    del _ERRORS[:-20]


@functools.lru_cache(maxsize=1)
def _can_serialize() -> bool:
    return importlib.util.find_spec("flatbuffers") is not None   # jax.export's serialization needs it


def exported_solver(key: tuple, make_traced):
    """The solver for the shapes in ``key`` = (solver, max_steps, batched, k, m, T, chunk)
    (the signature of :func:`twolayer._solve._make_solve`'s function), loaded from the
    export cache or exported there now from the jitted ``make_traced()``. None when the cache
    is disabled or the solver cannot be exported here: then the caller traces it."""
    folder = cache_dir()
    if folder is None or key in _BROKEN:
        return None
    with _LOCK:
        if key in _MEMO and (str(folder), key) in _ON_DISK:
            return _MEMO[key][1]
        if not _can_serialize():
            _note(key, ImportError("jax.export serialization needs the 'flatbuffers' package"))
            _BROKEN.add(key)
            return None
        path = export_path(key, folder)
        if key not in _MEMO:
            try:
                exp = _read(path, key)
                _MEMO[key] = (exp, _compile(key, exp))
                _ON_DISK.add((str(folder), key))
                count_load()
                return _MEMO[key][1]
            except FileNotFoundError:
                pass
            except Exception as exc:  # corrupt, truncated, other version or platform: trace again
                _note(key, exc)
            try:
                exp = _export(key, make_traced())
                _MEMO[key] = (exp, _compile(key, exp))
            except Exception as exc:  # e.g. a host callback in a new diffrax: use the traced solver
                _note(key, exc)
                _BROKEN.add(key)
                return None
        try:
            _write(path, key, _MEMO[key][0])
        except Exception as exc:  # unwritable folder: still use the exported solver in this process
            _note(key, exc)
        _ON_DISK.add((str(folder), key))      # written, or tried once: not again at every solve
        return _MEMO[key][1]


def clear_memory() -> None:
    """Forget the exported solvers held in this process (tests: force a load from disk)."""
    with _LOCK:
        _MEMO.clear()
        _ON_DISK.clear()
        _BROKEN.clear()


def last_errors() -> list:
    """Why recent loads or exports were ignored: [(key, message)], newest last."""
    return list(_ERRORS)
