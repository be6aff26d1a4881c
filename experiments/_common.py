"""Shared machinery of the experiments: cached, resumable sweeps of tidy records.

An experiment is a list of independent *units* (dicts of parameters, e.g. one
seed and one eps) and a pure function ``compute(unit) -> list[dict]`` returning
tidy records (one row per run, time and quantity). :func:`run_sweep` stores each
finished unit atomically (temp file + ``os.replace``) under

    <out>/<name>/<config-hash>/units/<unit-hash>.json

so a repeated run reuses the cache and an interrupted sweep resumes without losing
or duplicating finished units. When all units are done it writes ``records.csv``
and ``meta.json`` (config, seed, package versions, git revision, code fingerprint, timings).

A cached unit is reused only when the code that computed it is the code running now:
each unit file carries :func:`code_fingerprint` (a hash of the code of the ``twolayer``
package and of the module that defines ``compute``, comments and docstrings left out), and
a unit computed by other code (an edited simulator, an older release, or a unit file from
before fingerprints) is computed again, with a note on stderr and its count in
``meta.json`` (``n_stale_units``). So a fix to the simulator can never leave its old numbers
in a figure or a paper check. A process that runs code older than its files on disk (edited
after import) refuses to sweep (:class:`StaleCodeError`), and a Dask worker running other
code than the client has its units refused (:class:`experiments._executor.CodeMismatchError`).

Units run in this process by default; on Dask distributed inside a
``with DaskExecutor(...):`` block (see :mod:`experiments._executor`), which the
command-line option ``--executor dask`` sets up. Either way the process that called
:func:`run_sweep` writes each finished unit once, atomically, as it arrives.

Every ``python -m experiments.NAME`` shares one command line, built by
:func:`add_common_args` and :func:`executor_from_args` (also used by ``paper_checks``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["DEFAULT_RESULTS", "log_time_grid", "config_hash", "atomic_write_text", "run_sweep", "load_records",
           "DamagedCacheError",
           "cli", "add_common_args", "executor_from_args", "seed_arg", "package_versions", "git_revision",
           "sweep_dir", "code_fingerprint", "code_parts", "StaleResultsWarning", "StaleCodeError",
           "edited_since_import", "rerun_command", "unwritable_reason", "check_writable", "require_writable",
           "require_torch"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = Path(os.environ.get("TWOLAYER_RESULTS", REPO / "results" / "cache"))


def _jsonable(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def log_time_grid(t_min: float, t_max: float, n_times: int, inf: bool = True):
    """Times 0, ``n_times`` log-spaced points in [t_min, t_max], and optionally inf (the limit)."""
    import numpy as np
    parts = [[0.0], np.logspace(np.log10(t_min), np.log10(t_max), n_times)] + ([[np.inf]] if inf else [])
    return np.concatenate(parts)


def config_hash(obj) -> str:
    """Stable short hash of a JSON-able object (a config or a unit)."""
    text = json.dumps(_jsonable(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting and restoring it
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, then os.replace).

    The file gets the permissions of a normally created file (0666 minus the umask,
    e.g. 0644), not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def unwritable_reason(folder: Path | str) -> str | None:
    """Why ``folder`` cannot take output files, or None when it can. It is created if missing
    (with its parents), then a probe file is written in it and removed: the check every command
    makes on each output folder before it computes anything."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        return "exists and is not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write_probe_")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"is not a writable folder ({type(exc).__name__}: {exc.strerror or exc})"
    return None


def check_writable(folder: Path | str, what: str) -> None:
    """Raise :class:`twolayer.errors.TwoLayerInputError` naming ``what`` (e.g. ``"--out"``) and
    ``folder`` when ``folder`` cannot take output files (:func:`unwritable_reason`)."""
    why = unwritable_reason(folder)
    if why is not None:
        from twolayer.errors import TwoLayerInputError
        raise TwoLayerInputError(what, f"{folder} {why}", "give a folder you can create files in (e.g. a new "
                                 "folder under your home or /tmp); nothing was computed", kind="option")


def require_writable(parser: argparse.ArgumentParser, folders: dict) -> None:
    """:func:`check_writable` for a command line: ``folders`` maps an option (``"--out"``) to its
    folder (None: not used); the first that cannot take files is a usage error (exit 2)."""
    from twolayer.errors import TwoLayerInputError
    for what, folder in folders.items():
        if folder is None:
            continue
        try:
            check_writable(folder, what)
        except TwoLayerInputError as exc:
            parser.error(str(exc))


def require_torch(prog: str) -> None:
    """Exit with one line (no traceback, exit code 1) when PyTorch or torchvision cannot be imported:
    the commands that train or extract features call it before anything else."""
    for name in ("torch", "torchvision"):
        try:
            __import__(name)
        except ImportError as exc:
            raise SystemExit(f"{prog}: needs {name} (the optional extra `empirical`, which brings PyTorch), "
                             f"and it cannot be imported ({exc}); install it with pip install -e \".[empirical]\"")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "jax", "jaxlib", "diffrax", "pandas", "matplotlib", "seaborn",
                 "torch", "torchvision"):
        mod = sys.modules.get(name)
        if mod is None:
            try:
                from importlib.metadata import version
                out[name] = version(name)
            except Exception:  # noqa: BLE001 - not installed
                continue
        else:
            out[name] = getattr(mod, "__version__", "unknown")
    return out


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "unknown") + ("+dirty" if dirty else "")
    except Exception:  # noqa: BLE001 - git missing
        return "unknown"


def _module_file(compute) -> Path | None:
    """The source file of the module that defines ``compute`` (through functools.partial)."""
    fn = compute
    while hasattr(fn, "func"):
        fn = fn.func
    mod = sys.modules.get(getattr(fn, "__module__", None) or "")
    path = getattr(mod, "__file__", None)
    return Path(path).resolve() if path else None


def _code_text(path: Path) -> bytes:
    """The code of one source file, without what cannot change a result: comments, blank
    lines, layout and docstrings (the file's syntax tree with docstrings dropped, dumped
    without line numbers). A file that does not parse counts by its bytes. Read at each
    call; parsed once per distinct content."""
    return _parsed_code(path.read_bytes())


@functools.lru_cache(maxsize=128)
def _parsed_code(raw: bytes) -> bytes:
    import ast
    try:
        tree = ast.parse(raw)
    except (SyntaxError, ValueError):
        return raw
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False).encode()


def code_fingerprint(module_file: Path | str | None = None) -> str:
    """Hash (16 hex digits) of the code a sweep's records depend on: every ``.py`` file of
    the ``twolayer`` package (by its path inside the package) and ``module_file``, the source
    of the module that defines the sweep's ``compute`` (nothing more when it has none, e.g. a
    function typed into a session). Each file counts by its syntax tree (:func:`_code_text`),
    so an edit of a comment, a docstring or the layout keeps the cache, and any edit of the
    code discards it. Read from disk at each call, so an edit made between two sweeps of one
    process is seen."""
    import twolayer
    pkg = Path(twolayer.__file__).resolve().parent
    h = hashlib.sha256(b"ast %d.%d\0" % sys.version_info[:2])    # ast.dump differs between versions
    for path in sorted(pkg.rglob("*.py")):
        h.update(str(path.relative_to(pkg)).encode() + b"\0" + _code_text(path) + b"\0")
    if module_file is not None and Path(module_file).exists():
        h.update(b"module\0" + _code_text(Path(module_file)))
    return h.hexdigest()[:16]


def code_parts(compute) -> dict:
    """What a worker checks against the client (:mod:`experiments._executor`): the
    ``twolayer`` package's fingerprint (:func:`code_fingerprint` of no module), that of
    the module defining ``compute`` as this process imports it (None when it has no file
    here, e.g. a function pickled by value from a script), and the loaded files edited since
    their import (:func:`edited_since_import`)."""
    src = _module_file(compute)
    module = hashlib.sha256(_code_text(src)).hexdigest()[:16] if src is not None and src.exists() else None
    return dict(package=code_fingerprint(None), module=module, edited=edited_since_import(compute))


def _code_mismatch(mine: dict, theirs: dict) -> str | None:
    """Why a unit computed with ``theirs`` (:func:`code_parts` on a worker) cannot be cached
    by a client running ``mine``, or None when the code is the same."""
    what = [f"the twolayer package (fingerprint {theirs['package']} there, {mine['package']} here)"
            ] if theirs["package"] != mine["package"] else []
    if theirs["module"] is not None and theirs["module"] != mine["module"]:
        what.append(f"the module that defines compute (fingerprint {theirs['module']} there, {mine['module']} here)")
    if theirs.get("edited"):
        what.append(f"files edited after the worker imported them ({', '.join(theirs['edited'][:3])}: restart "
                    "the workers)")
    if not what:
        return None
    return (f"the worker on {theirs.get('host')} (pid {theirs.get('pid')}) runs other code than this client: "
            f"{' and '.join(what)}; install the same version on every worker (e.g. `pip install -e .` at this "
            "commit) and rerun: the unit was not cached")


class StaleCodeError(RuntimeError):
    """Code in the fingerprint changed on disk after this process imported it
    (:func:`edited_since_import`): a sweep would run the old code but label its results
    with the new code's fingerprint."""


#: The experiments' own files as this process imported them (twolayer's:
#: :data:`twolayer._sources.AT_IMPORT`).
_EXPERIMENTS_AT_IMPORT: dict = {}


def edited_since_import(compute=None) -> list[str]:
    """The files whose code enters :func:`code_fingerprint` and changed on disk after this
    process imported them: loaded ``twolayer`` modules, and the module that defines
    ``compute`` when it is one of the experiments. An edit of comments, docstrings or
    layout only is not a change (:func:`_code_text`)."""
    from twolayer import _sources
    edited = dict(_sources.edited_since_import())
    src = _module_file(compute) if compute is not None else None
    if src is not None:
        edited.update(_sources.edited_since_import(_EXPERIMENTS_AT_IMPORT, only={os.path.realpath(src)}))
    return sorted(path for path, (then, now) in edited.items()
                  if then is None or now is None or _parsed_code(then) != _parsed_code(now))


def _check_code_is_current(compute) -> None:
    edited = edited_since_import(compute)
    if edited:
        names = ", ".join(os.path.relpath(f, REPO) if f.startswith(str(REPO)) else f for f in edited[:5])
        raise StaleCodeError(
            f"the code of {names}{' and more' if len(edited) > 5 else ''} changed on disk after this process "
            "imported it: a sweep here would run the old code in memory but cache its results under the new "
            "code's fingerprint. Restart the Python process (e.g. the Jupyter kernel) and rerun.")


class StaleResultsWarning(UserWarning):
    """Cached records were computed by other code than the code running now."""


def sweep_dir(name: str, config, out: Path | str | None = None) -> Path:
    """The cache folder of one (experiment, config)."""
    return Path(out or DEFAULT_RESULTS) / name / config_hash(config)


#: seconds between two plain progress lines (:func:`_progress` when stderr is not a terminal)
PROGRESS_EVERY_S = 5.0


def _progress(iterable, total: int, desc: str, enabled: bool):
    """Per-unit progress with an ETA on stderr: a tqdm bar on a terminal; elsewhere (a log, a pipe,
    ``paper_checks``' output) one plain line at most every :data:`PROGRESS_EVERY_S` seconds."""
    if not enabled or total == 0:
        return iterable
    if sys.stderr.isatty():
        try:
            from tqdm.auto import tqdm
            return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False)
        except ImportError:
            pass
    return _progress_lines(iterable, total, desc)


def _progress_lines(iterable, total: int, desc: str):
    print(f"  {desc}: {total} unit(s) to compute", file=sys.stderr, flush=True)
    t0 = last = time.perf_counter()
    for done, item in enumerate(iterable, 1):
        yield item
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY_S and done < total:
            last = now
            eta = (now - t0) / done * (total - done)
            print(f"  {desc}: {done}/{total} units, {now - t0:.0f} s, ETA {eta:.0f} s", file=sys.stderr, flush=True)


def run_sweep(name: str, config, units: Iterable[dict], compute: Callable[[dict], list[dict]],
              out: Path | str | None = None, *, progress: bool | None = None,
              force: bool = False, executor=None) -> list[dict]:
    """Compute every unit not already cached, then return all records in unit order.

    Each record gets the unit's parameters merged in (record keys win) plus
    ``experiment`` and ``config_hash``. ``executor`` (an
    :class:`experiments._executor.Executor`) defaults to the one activated by an
    enclosing ``with executor:`` block (``--executor`` on the command line), else
    this process. With Dask, ``compute`` must pickle (a module-level function or a
    ``functools.partial`` of one). Each finished unit is written once, atomically,
    by this process as its result arrives; if some units fail, all the others are
    still written and :class:`experiments._executor.SweepError` is raised (a
    rerun computes only the missing units). Raises :class:`StaleCodeError` before
    computing anything when code in the fingerprint (loaded ``twolayer`` modules, the
    module of ``compute``) was edited after its import (the results would carry the wrong
    fingerprint).
    """
    from experiments._executor import CodeMismatchError, SweepError, current_executor
    _check_code_is_current(compute)
    executor = executor or current_executor()
    units = list(units)
    keys = [config_hash(u) for u in units]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: duplicate units in the sweep")
    root = sweep_dir(name, config, out)
    udir = root / "units"
    udir.mkdir(parents=True, exist_ok=True)
    chash = config_hash(config)
    atomic_write_text(root / "config.json", json.dumps(_jsonable(config), indent=2, sort_keys=True))
    if progress is None:
        progress = sys.stderr.isatty()
    t_start = time.perf_counter()
    src = _module_file(compute)
    code = code_fingerprint(src)
    payloads: dict[str, dict] = {}
    todo = []
    n_stale = 0
    damaged = []
    for unit, key in zip(units, keys):
        path = udir / f"{key}.json"
        if path.exists() and not force:
            payload = _read_unit(path)
            if payload is None:             # unreadable: named below, computed again, never trusted
                damaged.append(path.name)
            elif payload.get("code") == code:
                payloads[key] = payload
                continue
            else:
                n_stale += 1                # computed by other code: never reused
        todo.append((key, unit))
    n_cached = len(payloads)
    if damaged:
        print(f"{name}: {len(damaged)} cached unit file(s) under {udir} are damaged ({', '.join(damaged[:3])}"
              f"{', ...' if len(damaged) > 3 else ''}): computing them again", file=sys.stderr)
    if n_stale:
        print(f"{name}: {n_stale} cached unit(s) under {udir} were computed by other code (the twolayer "
              f"package{' or ' + src.name if src else ''} changed since): computing them again",
              file=sys.stderr)
    by_key = dict(todo)
    failed: list[tuple[dict, BaseException]] = []
    mine = None
    for key, result in _progress(executor.map_unordered(compute, todo), len(todo), name, progress):
        if isinstance(result, BaseException):
            failed.append((by_key[key], result))
            continue
        recs, seconds = result[:2]
        if len(result) > 2:                 # computed in another process: by the same code?
            mine = mine or code_parts(compute)
            why = _code_mismatch(mine, result[2])
            if why is not None:
                failed.append((by_key[key], CodeMismatchError(why)))
                continue
        payload = {"unit": _jsonable(by_key[key]), "records": recs, "seconds": seconds, "code": code}
        atomic_write_text(udir / f"{key}.json", json.dumps(payload))
        payloads[key] = payload
    if failed:
        first = failed[0][1]
        raise SweepError(
            f"{name}: {len(failed)} of {len(todo)} units failed on {executor!r} (first: unit "
            f"{failed[0][0]}: {type(first).__name__}: {first}); the {len(payloads)} finished units are "
            f"cached under {udir}, a rerun computes only the missing ones") from first
    all_records: list[dict] = []
    for unit, key in zip(units, keys):
        for rec in payloads[key]["records"]:
            row = dict(_jsonable(unit))
            row.update(rec)
            row["experiment"] = name
            row["config_hash"] = chash
            all_records.append(row)
    meta = {
        "experiment": name, "config": _jsonable(config), "config_hash": chash,
        "seed": getattr(config, "seed", None), "n_units": len(units), "n_cached_units": n_cached,
        "n_stale_units": n_stale, "n_damaged_units": len(damaged), "code_fingerprint": code,
        "code_module": str(src) if src is not None else None,
        "n_records": len(all_records), "seconds": time.perf_counter() - t_start,
        "executor": getattr(executor, "name", type(executor).__name__),
        "versions": package_versions(), "git_revision": git_revision(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_records(root, all_records)
    atomic_write_text(root / "meta.json", json.dumps(meta, indent=2, sort_keys=True, default=str))
    latest = Path(out or DEFAULT_RESULTS) / name / "latest.json"
    atomic_write_text(latest, json.dumps({"config_hash": chash, "config": _jsonable(config)}, indent=2))
    return all_records


class DamagedCacheError(OSError):
    """A cache file (``latest.json``, ``records.csv``, ``meta.json``) cannot be read; the message
    names the file and the fix. Unit files are never an error: a damaged one is computed again."""


def _read_unit(path: Path) -> dict | None:
    """A cached unit's payload, or None when the file is damaged (truncated, not JSON, wrong shape)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        return None
    return payload


def _damaged(path: Path, exc, name: str, where: str) -> DamagedCacheError:
    return DamagedCacheError(
        f"cache file {path} is damaged ({type(exc).__name__}: {exc}); delete it, or rerun "
        f"`python -m experiments.{name} --quick{where} --force` (or without --quick, as it was computed) "
        "to rebuild it")


def _write_records(root: Path, records: list[dict]) -> None:
    import pandas as pd
    text = pd.DataFrame.from_records(records).to_csv(index=False)
    atomic_write_text(root / "records.csv", text)


def load_records(name: str, config=None, out: Path | str | None = None):
    """Load the cached records of ``name`` as a DataFrame (never computes anything).

    With ``config=None`` the most recently finished config of that experiment is used.
    Raises FileNotFoundError with a hint when nothing is cached.
    """
    import pandas as pd
    base = Path(out or DEFAULT_RESULTS) / name
    where = f" --out {out}" if out is not None and Path(out) != Path(DEFAULT_RESULTS) else ""
    if config is None:
        latest = base / "latest.json"
        if not latest.exists():
            raise FileNotFoundError(f"no cached results for {name!r} under {base}; run "
                                    f"`python -m experiments.{name} --quick{where}` first")
        try:
            chash = json.loads(latest.read_text())["config_hash"]
            if not isinstance(chash, str):
                raise ValueError(f"config_hash is {chash!r}")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise _damaged(latest, exc, name, where) from None
    else:
        chash = config_hash(config)
    path = base / chash / "records.csv"
    if not path.exists():
        raise FileNotFoundError(f"no finished sweep at {path}; run "
                                f"{rerun_command(name, _jsonable(config) if config is not None else None, where)}")
    _warn_if_stale(name, base / chash / "meta.json", where)
    try:
        df = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:   # pandas' ParserError / EmptyDataError too
        raise _damaged(path, exc, name, where) from None
    try:   # a truncated file can still parse: its row count must be the one meta.json recorded
        n = json.loads((base / chash / "meta.json").read_text()).get("n_records")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        n = None
    if n is not None and len(df) != n:
        raise _damaged(path, ValueError(f"{len(df)} rows where meta.json records {n}"), name, where)
    try:    # what the records are, for a figure's title (figures._style.save): seed and mode
        stored = json.loads((base / chash / "config.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        stored = _jsonable(config) if config is not None else None
    df.attrs["source"] = {"experiment": name, "config_hash": chash,
                          "seed": stored.get("seed") if isinstance(stored, dict) else None,
                          "mode": config_mode(name, stored)}
    return df


def config_mode(name: str, config: dict | None) -> str:
    """``"quick"`` or ``"full"`` when ``config`` (JSON-able) is what ``Config.quick(seed)`` /
    ``Config.full(seed)`` of experiment ``name`` builds at its seed, else ``"custom"``."""
    import importlib
    as_json = lambda obj: json.loads(json.dumps(_jsonable(obj), sort_keys=True, default=str))
    if isinstance(config, dict):
        try:
            cls = importlib.import_module(f"experiments.{name}").Config
            seed = config.get("seed", 0)
            for mode, make in (("quick", cls.quick), ("full", cls.full)):
                if as_json(make(seed)) == as_json(config):
                    return mode
        except Exception:  # noqa: BLE001 - not an experiment module with Config.quick / full
            pass
    return "custom"


def rerun_command(name: str, config: dict | None, where: str = "") -> str:
    """The command line that computes ``config`` (a JSON-able config dict) of experiment
    ``name`` again: ``--quick`` and ``--seed`` as its ``Config.quick`` / ``Config.full``
    build it, else a pointer to the stored config.json."""
    mode = config_mode(name, config)
    if mode != "custom":
        seed = config.get("seed", 0)
        flag = " --quick" if mode == "quick" else ""
        return f"`python -m experiments.{name}{flag}{f' --seed {seed}' if seed else ''}{where}`"
    return (f"`python -m experiments.{name}{where}` with the configuration in its config.json"
            if config is not None else f"`python -m experiments.{name}{where}`")


def _warn_if_stale(name: str, meta_path: Path, where: str) -> None:
    """Warn (:class:`StaleResultsWarning`) when the records were computed by other code than
    the code now in ``twolayer`` and in the module that computed them (``meta.json``)."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        meta = {}
    stored, module = meta.get("code_fingerprint"), meta.get("code_module")
    if stored is None or stored != code_fingerprint(module):
        import warnings
        what = "by other code than the code now installed" if stored else "before code fingerprints were recorded"
        warnings.warn(f"the cached records of {name!r} ({meta_path.parent}) were computed {what}; "
                      f"rerun {rerun_command(name, meta.get('config'), where)} (it recomputes them) before "
                      "trusting a figure or check drawn from them", StaleResultsWarning, stacklevel=3)


def _int_arg(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum`` (``what`` names the kind in the error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {what} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a {what} integer, got {value}")
        return value
    return parse


#: argparse type of ``--seed``: a non-negative integer (the base seed).
seed_arg = _int_arg(0, "non-negative")
_positive_int = _int_arg(1, "positive")


def add_common_args(parser: argparse.ArgumentParser, *, results: str = "out", quick: bool = True,
                    seed: bool = True, force: bool = True, executor: bool = True,
                    quick_help: str = "small, fast configuration (the quick checks)"
                    ) -> argparse.ArgumentParser:
    """Add the options every command shares, with one meaning everywhere.

    ``--quick``; ``--seed S`` (the base seed: unit i of a sweep derives its seeds
    from S); the results cache (``results="out"``: ``--out DIR`` with the alias
    ``--cache DIR``, as in ``experiments.*``, dest ``out``; ``results="cache"``:
    ``--cache DIR`` only, dest ``cache``, for commands whose ``--out`` is
    something else, e.g. a report or figure folder; ``results=None``: none);
    ``--force``; ``--executor local|dask``, ``--workers N``, ``--scheduler ADDRESS``
    (read them with :func:`executor_from_args`).
    """
    if quick:
        parser.add_argument("--quick", action="store_true", help=quick_help)
    if seed:
        parser.add_argument("--seed", type=seed_arg, default=0, metavar="S",
                            help="base seed, a non-negative integer; every unit's seeds derive "
                                 "from it (default 0)")
    cache_help = (f"results cache folder, created if missing (default {DEFAULT_RESULTS}, "
                  "or $TWOLAYER_RESULTS)")
    if results == "out":
        parser.add_argument("--out", "--cache", dest="out", type=Path, default=None, metavar="DIR",
                            help=cache_help)
    elif results == "cache":
        parser.add_argument("--cache", type=Path, default=None, metavar="DIR", help=cache_help)
    elif results is not None:
        raise ValueError(f"results must be 'out', 'cache' or None, got {results!r}")
    if force:
        parser.add_argument("--force", action="store_true",
                            help="recompute units that are already cached")
    if executor:
        g = parser.add_argument_group("where units run")
        g.add_argument("--executor", choices=("local", "dask"), default=None,
                       help="'local': one after another in this process (default); 'dask': on Dask "
                            "distributed (needs the 'dask' extra); each finished unit is cached as it "
                            "arrives, an interrupted run resumes")
        g.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="with --executor dask: start a LocalCluster of N worker processes "
                            "(default: one per CPU core)")
        g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="with --executor dask: connect to a running Dask scheduler, e.g. "
                            "tcp://host:8786, instead of starting a LocalCluster")
    return parser


def executor_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None):
    """The executor chosen by ``--executor/--workers/--scheduler``, not yet started.

    Use it as ``with executor_from_args(args, parser): ...``: it starts (a Dask
    cluster, if asked) and becomes the executor of every :func:`run_sweep` inside
    the block. Inconsistent options are a usage error (``parser.error``, exit 2)
    when ``parser`` is given, else a TwoLayerInputError.
    """
    from experiments._executor import make_executor
    from twolayer.errors import TwoLayerInputError
    kind = getattr(args, "executor", None)
    workers, scheduler = getattr(args, "workers", None), getattr(args, "scheduler", None)
    if kind is None:
        kind = "local"
        if workers is not None or scheduler is not None:
            msg = "--workers/--scheduler need --executor dask"
            if parser is not None:
                parser.error(msg)
            raise TwoLayerInputError("executor", msg, "add --executor dask")
    try:
        if kind == "dask":
            import importlib.util
            if importlib.util.find_spec("distributed") is None:
                raise TwoLayerInputError("executor", "'dask' needs the optional package 'distributed', "
                                         "which is not installed",
                                         "pip install -e '.[dask]' (or use --executor local)")
        return make_executor(kind, workers=workers, scheduler=scheduler)
    except TwoLayerInputError as exc:
        if parser is not None:
            parser.error(str(exc))
        raise


def _description(doc: str) -> str:
    """A module docstring for --help: without the internal ``(issue N §M)`` references."""
    import re
    ref = r"issues? #?\d+(?:\s*§\s*[\d.]+)?(?:(?:,| and) #?\d+(?:\s*§\s*[\d.]+)?)*"
    text = re.sub(r"\s*\((?:see )?" + ref + r"\)", "", doc or "")
    text = re.sub(r",\s*" + ref + r"(?=\))", "", text)
    return re.sub(r"\s+(?:of|in|from|for) " + ref, "", text)


def cli(name: str, config_cls, run: Callable, argv=None, description: str = "") -> list[dict]:
    """The shared command line of ``python -m experiments.NAME`` (see :func:`add_common_args`)."""
    ap = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=_description(description),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, results="out")
    args = ap.parse_args(argv)
    require_writable(ap, {"--out": args.out if args.out is not None else DEFAULT_RESULTS})
    config = config_cls.quick(args.seed) if args.quick else config_cls.full(args.seed)
    t0 = time.perf_counter()
    root = sweep_dir(name, config, args.out)
    try:
        with executor_from_args(args, ap) as ex:
            records = run(config, out=args.out, force=args.force, progress=True)
    except KeyboardInterrupt:
        kept = len(list((root / "units").glob("*.json"))) if (root / "units").is_dir() else 0
        print(f"\n{name}: interrupted; {kept} finished unit(s) are kept under {root / 'units'} (each written "
              "whole); rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
    try:
        meta = json.loads((root / "meta.json").read_text())
        n_cached, n_units = meta["n_cached_units"], meta["n_units"]
        units = f", {n_units - n_cached} of {n_units} units computed, {n_cached} from the cache"
    except (OSError, ValueError, KeyError):
        units = ""
    print(f"{name}: {len(records)} records in {time.perf_counter() - t0:.1f}s ({ex.name}{units}) -> {root}")
    return records


def _snapshot_experiments() -> None:
    """{path: bytes} of this folder's files, as :func:`twolayer._sources.snapshot` (not
    imported here: ``import experiments`` stays light)."""
    for path in Path(__file__).parent.rglob("*.py"):
        _EXPERIMENTS_AT_IMPORT[os.path.realpath(path)] = path.read_bytes()


_snapshot_experiments()
