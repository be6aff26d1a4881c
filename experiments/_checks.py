"""The check contract shared by every experiment's ``check`` and by ``paper_checks``.

``check(records, config) -> list[dict]`` returns one row per claim with the keys of
:data:`ROW_KEYS`: ``id`` (stable slug: letters, digits, underscores; unique within the experiment), ``claim`` (what
exactly is checked), ``source`` (THEORY.md section / paper), ``status`` (one of
:data:`CHECK_STATUSES`), ``margin`` (float or None: how far the claim holds, > 0 = with
room), ``unit`` (the margin's unit in words), ``n_cases`` (int) and ``details`` (str, the
numbers). :func:`row` builds and validates one.

An experiment module may define ``FINDINGS: dict[str, str]``: check id -> reason why the
model contradicts the paper there (with the numbers). ``paper_checks`` then reports a
"fail" of that id as :attr:`Status.FINDING` (an expected result, like pytest's xfail) and a
"pass" as :attr:`Status.UNEXPECTED_PASS` (the recorded finding no longer holds). It may
also define ``OBSERVATIONS: dict[str, str]``: ids of comparisons whose either outcome is a
result (THEORY.md §9); a "fail" there is reported as a finding with that reason, a "pass"
stays a pass.
"""

from __future__ import annotations

import math
import re
from enum import Enum

__all__ = ["Status", "CHECK_STATUSES", "REPORT_STATUSES", "ROW_KEYS", "ID_PATTERN", "row", "passed",
           "validate_row", "decades_below", "ROUNDING", "MAX_DECADES",
           "DECADES_BELOW", "SIGN_TEST_LEVEL", "sign_test_losses", "sign_test"]


class Status(str, Enum):
    """Status of one claim. ``str(Status.PASS) == "pass"``; compares equal to its value."""

    PASS = "pass"                        #: the claim holds, with the margin given
    FAIL = "fail"                        #: the claim does not hold (a regression or a new finding)
    VACUOUS = "vacuous"                  #: a bound <= 0 everywhere: nothing verified
    NOT_APPLICABLE = "not_applicable"    #: an assumption of the claim fails
    FINDING = "finding"                  #: report level: a fail recorded in FINDINGS, with its reason
    UNEXPECTED_PASS = "unexpected_pass"  #: report level: a pass although FINDINGS expects a fail
    NO_RESULTS = "no_results"            #: report level: no (cached) results to check yet
    ERROR = "error"                      #: report level: the experiment or its check raised

    def __str__(self) -> str:
        return self.value


#: What a ``check`` function may return (the empirical checks may also say "no_results").
CHECK_STATUSES = (Status.PASS, Status.FAIL, Status.VACUOUS, Status.NOT_APPLICABLE)
#: Every status a report row may carry, in the order summaries list them.
REPORT_STATUSES = tuple(Status)
ROW_KEYS = ("id", "claim", "source", "status", "margin", "unit", "n_cases", "details")
#: An id is an identifier-like slug: letters, digits, underscores (THEORY.md names such as S_perp keep their case).
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")


#: float64's relative precision: a "decades below tolerance" margin counts at most this far
#: below the tolerance (an error of exactly 0 would otherwise show as ~300 decades).
ROUNDING = 2.0 ** -52
#: The largest margin :func:`decades_below` gives: log10(1 / ROUNDING) = 15.65 decades, for an
#: error at or below float64 rounding of the tolerance (the report prints it as ">=").
MAX_DECADES = math.log10(1.0 / ROUNDING)
#: The unit of the rows whose margin :func:`decades_below` computes.
DECADES_BELOW = "decades below tolerance"


def decades_below(tol: float, worst: float) -> float:
    """The margin log10(tol / worst) in decades (> 0: within tolerance), with ``worst``
    counted down to tol * ROUNDING only: at most log10(1 / eps) = 15.65 decades, reached by an
    exact 0 (the row's details state the error itself)."""
    return float(math.log10(tol / max(float(worst), tol * ROUNDING)))


#: One-sided level of the sign test that decides "A beats B" claims over seeds or instances:
#: a true tie passes at most this often (1%; with 16 seeds the winner may lose on 2).
SIGN_TEST_LEVEL = 0.01


def sign_test_losses(n: int, level: float = SIGN_TEST_LEVEL) -> int | None:
    """The most of ``n`` seeds the predicted winner may lose while a one-sided sign test at
    ``level`` still says it wins (P(Binomial(n, 1/2) >= n - j) < level); None when even n
    wins of n are not significant (n < 7 at 1%)."""
    from scipy.stats import binom
    ok = [j for j in range(n) if binom.sf(n - j - 1, n, 0.5) < level]
    return max(ok) if ok else None


def _ordinal(i: int) -> str:
    return f"{i}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(i if i < 20 else i % 10, 'th')}"


def sign_test(signed, winner: str = "the predicted winner", level: float = SIGN_TEST_LEVEL):
    """Decide "the predicted winner wins" from per-seed margins ``signed`` (> 0: it wins that
    seed) by a one-sided sign test at ``level``: it may lose on at most j =
    :func:`sign_test_losses` (n) of n. A median would decide a near tie by chance.

    Returns (status, margin, rule): "pass" / "fail", or "not_applicable" with too few seeds;
    margin = the (j+1)-th smallest value, > 0 exactly when the test passes (NaN when not
    applicable); rule = the criterion in words, for the row's details."""
    import numpy as np
    signed = np.asarray(signed, dtype=float)
    n = int(signed.size)
    j = sign_test_losses(n, level)
    if j is None:
        return (Status.NOT_APPLICABLE, float("nan"),
                f"too few cases ({n}) for a sign test at {level:g}")
    margin = float(np.sort(signed)[j])
    return (passed(margin > 0), margin,
            f"pass needs {winner} better on >= {n - j} of {n} (one-sided sign test at {level:g}); margin = the "
            f"{_ordinal(j + 1)} smallest signed value")


def passed(ok: bool) -> Status:
    """``Status.PASS`` if ``ok`` else ``Status.FAIL`` (``ok`` must be a real bool, not an array)."""
    if not isinstance(ok, bool):
        ok = bool(ok)  # numpy bools; an array raises here, never passes silently
    return Status.PASS if ok else Status.FAIL


def _margin(margin, rid) -> float | None:
    """NaN (nothing to measure) -> None; +-inf is refused: a margin must be a finite number of its unit."""
    if margin is None:
        return None
    m = float(margin)
    if math.isnan(m):
        return None
    if math.isinf(m):
        raise ValueError(f"check row {rid!r}: margin {m} is not finite; clip the quantities it is computed "
                         "from (e.g. at a stated floor) so that it says by how much the claim holds or fails")
    return m


def validate_row(res: dict, allowed=CHECK_STATUSES) -> dict:
    """Check one row against the contract; returns a normalised copy (plain str status, NaN margin -> None).

    Raises ``ValueError`` naming what is wrong: a missing key, an id that is not a slug, a
    status outside ``allowed``, a margin that is not a number, an n_cases that is not an int.
    """
    missing = [k for k in ROW_KEYS if k not in res]
    if missing:
        raise ValueError(f"check row {res.get('id', res.get('claim', '?'))!r} lacks {missing}; "
                         f"every row needs {list(ROW_KEYS)} (see experiments/_checks.py)")
    rid = res["id"]
    if not isinstance(rid, str) or not ID_PATTERN.match(rid):
        raise ValueError(f"check row id {rid!r} is not a slug (letters, digits, underscores; no spaces)")
    status = res["status"]
    values = [str(Status(s).value) for s in allowed]
    if isinstance(status, Status):
        status = status.value
    if status not in values:
        raise ValueError(f"check row {rid!r}: unknown status {status!r}; expected one of {values}")
    margin = res["margin"]
    if margin is not None and not isinstance(margin, (int, float)) and not hasattr(margin, "item"):
        raise ValueError(f"check row {rid!r}: margin {margin!r} is not a number or None")
    n = res["n_cases"]
    if isinstance(n, bool) or int(n) != n or int(n) < 0:
        raise ValueError(f"check row {rid!r}: n_cases {n!r} is not a non-negative int")
    for key in ("claim", "source", "unit", "details"):
        if not isinstance(res[key], str):
            raise ValueError(f"check row {rid!r}: {key} must be a str, got {type(res[key]).__name__}")
    out = dict(res)
    out.update(status=status, margin=_margin(margin, rid), n_cases=int(n))
    return out


def row(id: str, claim: str, source: str, status, margin, unit: str, n_cases: int, details: str) -> dict:
    """One check row (validated; a NaN margin becomes None)."""
    return validate_row(dict(id=id, claim=claim, source=source, status=status, margin=margin, unit=unit,
                             n_cases=n_cases, details=details))
