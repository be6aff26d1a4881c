"""The package's source files as this process imported them: each file's bytes at
``import twolayer`` (about 0.4 MB, read once; nothing is parsed or changed).

The experiments' cache labels results with the code on disk
(:func:`experiments._common.code_fingerprint`); a process that imported ``twolayer`` and
whose files were edited afterwards (a long Jupyter session) runs the old code in memory.
:func:`edited_since_import` names such files, so that the cache can refuse to label old
code's results with the new code's fingerprint.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["snapshot", "edited_since_import", "AT_IMPORT"]


def _read(path) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def snapshot(folder: Path | str) -> dict:
    """{real path (symlinks resolved): bytes} of every ``.py`` file under ``folder``."""
    return {os.path.realpath(p): _read(p) for p in Path(folder).rglob("*.py")}


#: This package's files at its import.
AT_IMPORT = snapshot(Path(__file__).parent)


def edited_since_import(taken: dict | None = None, only=None) -> dict:
    """{path: (bytes then, bytes now)} for the files of modules loaded in this process whose
    content changed on disk since ``taken`` (default :data:`AT_IMPORT`) was recorded: what
    runs in memory is then not what is on disk. Modules not yet imported are left out (they
    will load from disk); ``only``: a set of paths to consider, else all."""
    taken = AT_IMPORT if taken is None else taken
    names = {os.path.basename(p) for p in taken}
    out = {}
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not f or os.path.basename(f) not in names:
            continue
        path = os.path.realpath(f)
        if path in taken and (only is None or path in only) and path not in out:
            now = _read(path)
            if now != taken[path]:
                out[path] = (taken[path], now)
    return out
