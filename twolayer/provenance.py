"""Provenance, written once (issue 19 §5): JSON conversion, config hashes, atomic writes,
package versions, the git revision and the code fingerprint.

A leaf module: it imports only the standard library (numpy when it is loaded), so the
experiments' cache (:mod:`experiments._common`), the empirical runs
(:mod:`twolayer.empirical.results`) and the scoreboard all label their results the same way.

The code fingerprint covers only the code a sweep runs: the simulator (every ``.py`` file of
``twolayer`` outside ``twolayer/empirical``), the module that defines the sweep's ``compute``,
and ``twolayer/empirical`` only when that module reaches it through its imports (followed
statically through the ``experiments`` modules). So an edit of the torch code keeps every
exact-simulator cache, and an edit of the simulator discards them all.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["jsonable", "config_hash", "atomic_write_text", "atomic_write_json", "package_versions",
           "git_revision", "code_text", "same_code", "code_fingerprint", "package_fingerprint", "module_file",
           "uses_empirical", "PACKAGE", "REPO"]

#: The ``twolayer`` package folder and the repository holding it.
PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
_EMPIRICAL = "empirical"


# ----------------------------------------------------------------------------- JSON and hashes
def jsonable(obj, keep_nan: bool = False):
    """A JSON-able copy of ``obj``: dataclasses as dicts, tuples and sets as lists, numpy
    scalars and arrays as Python numbers and lists, paths as text, NaN as None (kept as NaN
    with ``keep_nan``, for JSON written with ``allow_nan``)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name), keep_nan) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v, keep_nan) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v, keep_nan) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):       # numpy scalar or array
        return jsonable(obj.tolist(), keep_nan)
    if isinstance(obj, float) and math.isnan(obj) and not keep_nan:
        return None
    return obj


def config_hash(obj, digits: int = 12) -> str:
    """A stable short hash (``digits`` hex digits) of a JSON-able object: a config or a unit.
    The empirical runs name their cached files with 16 digits (kept, so that existing caches
    of trained backbones stay valid); the experiments' sweep folders with 12."""
    text = json.dumps(jsonable(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:digits]


# ----------------------------------------------------------------------------- atomic writes
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


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, then
    ``os.replace``): a reader sees the old file or the new one, never half of one. The file
    gets the permissions of a normally created file (0666 minus the umask)."""
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


def atomic_write_json(path, obj, indent: int = 1, keep_nan: bool = True) -> None:
    """:func:`atomic_write_text` of ``obj`` as JSON (through :func:`jsonable`; NaN is
    written as NaN unless ``keep_nan=False``)."""
    atomic_write_text(path, json.dumps(jsonable(obj, keep_nan), indent=indent, allow_nan=True))


# ----------------------------------------------------------------------------- versions and git
_BASE_PACKAGES = ("numpy", "scipy", "jax", "jaxlib", "diffrax", "pandas", "matplotlib", "seaborn",
                  "torch", "torchvision")


def package_versions(extra=()) -> dict:
    """{"python": ..., package: version} for the base packages and ``extra`` that are
    installed (the imported module's version where loaded, else the installed metadata)."""
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for name in tuple(_BASE_PACKAGES) + tuple(extra):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None):
            out[name] = mod.__version__
            continue
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_revision(repo=None) -> str:
    """The commit of the repository holding this package, with ``+dirty`` when tracked files
    differ from it; "unknown" without git or outside a repository."""
    repo = Path(repo) if repo else REPO
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0 or not rev.stdout.strip():
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- code fingerprint
def code_text(path) -> bytes:
    """The code of one source file without what cannot change a result: comments, blank
    lines, layout and docstrings (its syntax tree, docstrings dropped, dumped without line
    numbers). A file that does not parse counts by its bytes. Read at each call; parsed once
    per distinct content."""
    return _parsed_code(Path(path).read_bytes())


@functools.lru_cache(maxsize=256)
def _parsed_code(raw: bytes) -> bytes:
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


def same_code(a: bytes | None, b: bytes | None) -> bool:
    """Whether two versions of a file hold the same code (:func:`code_text`'s sense)."""
    return a is not None and b is not None and _parsed_code(a) == _parsed_code(b)


def module_file(compute) -> Path | None:
    """The source file of the module that defines ``compute`` (through functools.partial)."""
    fn = compute
    while hasattr(fn, "func"):
        fn = fn.func
    mod = sys.modules.get(getattr(fn, "__module__", None) or "")
    path = getattr(mod, "__file__", None)
    return Path(path).resolve() if path else None


def _imports(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def uses_empirical(path) -> bool:
    """Whether the module at ``path`` reaches ``twolayer.empirical`` through its imports,
    followed statically through the repository's ``experiments`` modules."""
    if path is None:
        return False
    seen, todo = set(), [Path(path).resolve()]
    experiments = REPO / "experiments"
    while todo:
        p = todo.pop()
        if p in seen or not p.exists():
            continue
        seen.add(p)
        if PACKAGE / _EMPIRICAL in p.parents:
            return True
        for name in _imports(p):
            parts = name.lstrip(".").split(".")
            relative = name.startswith(".")
            if (parts[:2] == ["twolayer", _EMPIRICAL]) or (relative and p.parent == PACKAGE
                                                            and parts[0] == _EMPIRICAL):
                return True
            if parts[0] == "experiments" or (relative and p.parent == experiments):
                stem = parts[1] if parts[0] == "experiments" and len(parts) > 1 else parts[0]
                if stem:
                    todo.append(experiments / f"{stem}.py")
    return False


def package_fingerprint(include_empirical: bool = False) -> str:
    """Hash (16 hex digits) of the ``twolayer`` package's code (:func:`code_text` of each
    file, by its path inside the package); ``twolayer/empirical`` only when asked."""
    h = hashlib.sha256(b"ast %d.%d\0" % sys.version_info[:2])    # ast.dump differs between versions
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == _EMPIRICAL and not include_empirical:
            continue
        h.update(str(rel).encode() + b"\0" + code_text(path) + b"\0")
    return h.hexdigest()[:16]


def code_fingerprint(module_file_=None) -> str:
    """Hash (16 hex digits) of the code a sweep's records depend on (module docstring): the
    package (:func:`package_fingerprint`, with ``twolayer/empirical`` when ``module_file_``
    reaches it) and ``module_file_``, the module that defines the sweep's ``compute``
    (nothing more when it has none, e.g. a function typed into a session). An edit of a
    comment, a docstring or the layout keeps the cache; any edit of the code discards it.
    Read from disk at each call."""
    h = hashlib.sha256(package_fingerprint(uses_empirical(module_file_)).encode())
    if module_file_ is not None and Path(module_file_).exists():
        h.update(b"module\0" + code_text(Path(module_file_)))
    return h.hexdigest()[:16]
