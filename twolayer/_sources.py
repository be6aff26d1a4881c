"""The package's source files as this process imported them: each file's size and
modification time at ``import twolayer`` (a ``stat`` of each, nothing read or changed).

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


def _stat(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def snapshot(folder: Path | str) -> dict:
    """{absolute path: (mtime_ns, size)} of every ``.py`` file under ``folder``."""
    return {os.path.abspath(p): _stat(p) for p in Path(folder).rglob("*.py")}


#: This package's files at its import.
AT_IMPORT = snapshot(Path(__file__).parent)


def edited_since_import(taken: dict | None = None) -> list[str]:
    """Files of the modules loaded in this process that changed on disk (size or modification
    time) since ``taken`` (default :data:`AT_IMPORT`) was recorded: what runs in memory is then
    not what is on disk. Modules not yet imported are not listed (they will load from disk)."""
    taken = AT_IMPORT if taken is None else taken
    out = []
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not f:
            continue
        path = os.path.abspath(f)
        if path in taken and _stat(path) != taken[path]:
            out.append(path)
    return sorted(set(out))
