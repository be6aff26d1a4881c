"""JAX plumbing for the solver: the persistent compilation cache, float64 scope and a
compile counter. Nothing here runs on ``import twolayer``.

Persistent cache (issue 10): at the first solve, :func:`enable_persistent_cache` sets
JAX's global options ``jax_compilation_cache_dir`` and
``jax_persistent_cache_min_compile_time_secs = 0`` (the only global JAX settings twolayer
touches, and only when the folder is still unset), so that a new process loads the compiled
solver from disk instead of compiling it again (about 5-10 s per shape). The folder is

* ``$TWOLAYER_JAX_CACHE`` if set (``off``, ``0`` or ``none`` disables the cache), else
* ``$XDG_CACHE_HOME/twolayer/jax`` (default ``~/.cache/twolayer/jax``).

If the user already set ``jax_compilation_cache_dir`` themselves, it is left as it is.
float64 is enabled only inside the solver calls (``jax.enable_x64``, thread-local).

The XLA cache alone leaves diffrax's tracing and lowering (about 5 s) to every new process;
the same folder therefore also holds the exported solvers (``<folder>/export``,
:mod:`twolayer._export`, ``jax.export``), which a new process loads without tracing.
:func:`compile_count` counts traces in this process (an export traces, a load from disk does
not); :func:`load_count` counts exported solvers loaded from disk.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["cache_dir", "enable_persistent_cache", "compile_count", "count_compile", "load_count", "count_load"]

_LOCK = threading.Lock()
_STATE = {"enabled": None, "compiles": 0, "loads": 0}
ENV = "TWOLAYER_JAX_CACHE"


def cache_dir() -> Path | None:
    """The persistent cache folder twolayer uses (None when disabled by the env var)."""
    val = os.environ.get(ENV, "").strip()
    if val.lower() in ("off", "0", "none", "false", "no"):
        return None
    if val:
        return Path(val).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "twolayer" / "jax"


def enable_persistent_cache() -> str | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir` (once per process;
    a no-op when disabled or when the user has set ``jax_compilation_cache_dir``).
    Returns the folder in use, or None."""
    with _LOCK:
        if _STATE["enabled"] is not None:
            return _STATE["enabled"] or None
        import jax
        current = jax.config.jax_compilation_cache_dir
        folder = cache_dir()
        if current:
            _STATE["enabled"] = str(current)
        elif folder is None:
            _STATE["enabled"] = ""
        else:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                jax.config.update("jax_compilation_cache_dir", str(folder))
                # The solver's XLA compile takes under JAX's default 1 s threshold on
                # small shapes; store it anyway (it is the part a new process can skip).
                if jax.config.jax_persistent_cache_min_compile_time_secs > 0.0:
                    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
                _reinitialize()
                _STATE["enabled"] = str(folder)
            except OSError:
                _STATE["enabled"] = ""      # unwritable: run without a disk cache
        return _STATE["enabled"] or None


def _reinitialize() -> None:
    """JAX decides at its first compilation whether a disk cache is used; if anything was
    compiled before (e.g. at diffrax's import) the new folder would be ignored until the
    cache is re-initialised."""
    try:
        from jax._src import compilation_cache as cc
        if cc.is_initialized():
            cc.reset_cache()
    except (ImportError, AttributeError):
        pass


def count_compile() -> None:
    """Called from inside a solver function while JAX traces it (once per new shape)."""
    with _LOCK:
        _STATE["compiles"] += 1


def compile_count() -> int:
    """How many times this process has traced (and compiled, or loaded from the persistent
    cache) a solver function. A benchmark asserts it does not grow across calls. Loading an
    exported solver from disk (:mod:`twolayer._export`) traces nothing and does not count."""
    return _STATE["compiles"]


def count_load() -> None:
    """Called when an exported solver is loaded from disk instead of traced."""
    with _LOCK:
        _STATE["loads"] += 1


def load_count() -> int:
    """How many exported solvers this process has loaded from disk (no tracing)."""
    return _STATE["loads"]
