"""Which code computed a unit (:mod:`experiments._common`'s cache, :mod:`experiments._executor`'s
workers): the parts a worker reports, how two reports differ, and the files edited since
this process imported them. The hashes themselves are :mod:`twolayer.provenance`'s."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from twolayer.provenance import (REPO, code_text, module_file, package_fingerprint, same_code,
                                 uses_empirical)

__all__ = ["code_parts", "StaleCodeError", "edited_since_import", "check_code_is_current"]


def code_parts(compute) -> dict:
    """What a worker checks against the client (:mod:`experiments._executor`): the
    ``twolayer`` package's fingerprint (:func:`~twolayer.provenance.package_fingerprint`), that of
    the module defining ``compute`` as this process imports it (None when it has no file
    here, e.g. a function pickled by value from a script), and the loaded files edited since
    their import (:func:`edited_since_import`)."""
    src = module_file(compute)
    module = hashlib.sha256(code_text(src)).hexdigest()[:16] if src is not None and src.exists() else None
    return dict(package=package_fingerprint(uses_empirical(src)), module=module, edited=edited_since_import(compute))


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
    src = module_file(compute) if compute is not None else None
    if src is not None:
        edited.update(_sources.edited_since_import(_EXPERIMENTS_AT_IMPORT, only={os.path.realpath(src)}))
    return sorted(path for path, (then, now) in edited.items() if not same_code(then, now))


def check_code_is_current(compute) -> None:
    edited = edited_since_import(compute)
    if edited:
        names = ", ".join(os.path.relpath(f, REPO) if f.startswith(str(REPO)) else f for f in edited[:5])
        raise StaleCodeError(
            f"the code of {names}{' and more' if len(edited) > 5 else ''} changed on disk after this process "
            "imported it: a sweep here would run the old code in memory but cache its results under the new "
            "code's fingerprint. Restart the Python process (e.g. the Jupyter kernel) and rerun.")



def _snapshot_experiments() -> None:
    """{path: bytes} of this folder's files, as :func:`twolayer._sources.snapshot` (not
    imported here: ``import experiments`` stays light)."""
    for path in Path(__file__).parent.rglob("*.py"):
        _EXPERIMENTS_AT_IMPORT[os.path.realpath(path)] = path.read_bytes()


_snapshot_experiments()
