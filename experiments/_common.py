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
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from twolayer.provenance import (REPO, atomic_write_text, code_fingerprint, code_text, config_hash, git_revision, jsonable,
                                 module_file, package_versions)

from ._code import StaleCodeError, _code_mismatch, check_code_is_current, code_parts, edited_since_import

__all__ = ["DEFAULT_RESULTS", "log_time_grid", "config_hash", "atomic_write_text", "run_sweep", "load_records",
           "DamagedCacheError",
           "cli", "add_common_args", "executor_from_args", "seed_arg", "package_versions", "git_revision",
           "sweep_dir", "code_fingerprint", "code_parts", "StaleResultsWarning", "StaleCodeError",
           "edited_since_import", "rerun_command", "unwritable_reason", "check_writable", "require_writable",
           "require_torch"]

DEFAULT_RESULTS = Path(os.environ.get("TWOLAYER_RESULTS", REPO / "results" / "cache"))


_jsonable = jsonable


def log_time_grid(t_min: float, t_max: float, n_times: int, inf: bool = True):
    """Times 0, ``n_times`` log-spaced points in [t_min, t_max], and optionally inf (the limit)."""
    import numpy as np
    parts = [[0.0], np.logspace(np.log10(t_min), np.log10(t_max), n_times)] + ([[np.inf]] if inf else [])
    return np.concatenate(parts)


_module_file = module_file
_code_text = code_text
_check_code_is_current = check_code_is_current


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
    require_writable(ap, {"--out / --cache": args.out if args.out is not None else DEFAULT_RESULTS})
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
