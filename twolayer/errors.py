"""Errors raised by twolayer.

Every error on bad input is a :class:`TwoLayerInputError` (a ``ValueError``)
that names the offending argument, says what was wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "TwoLayerInputError",
    "NotOrthonormalError",
    "AssumptionError",
    "SolverError",
    "SolverStepLimitError",
    "SolverFailedError",
    "SolverCertificateError",
    "NotConvergedError",
    "NoLimitError",
    "PrecisionWarning",
]


class TwoLayerInputError(ValueError):
    """Bad input to a twolayer function.

    Attributes
    ----------
    argument : the name of the offending argument.
    problem : what was wrong with it.
    fix : what to do about it.
    kind : what ``argument`` is ("argument", or e.g. "environment variable").
    """

    def __init__(self, argument: str, problem: str, fix: str = "", *, kind: str = "argument"):
        self.argument = argument
        self.problem = problem
        self.fix = fix
        self.kind = kind
        msg = f"{kind} `{argument}`: {problem}"
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class NotOrthonormalError(TwoLayerInputError):
    """A matrix that must have orthonormal rows (B0, B_star) does not.

    ``deviation`` is max |B B^T - I| (entrywise).
    """

    def __init__(self, argument: str, deviation: float, tol: float, dtype=None):
        self.deviation = float(deviation)
        self.tol = float(tol)
        low = dtype is not None and str(dtype) in ("float32", "float16", "bfloat16")
        super().__init__(
            argument,
            f"rows are not orthonormal: max|{argument} {argument}^T - I| = "
            f"{deviation:.3e} > tol {tol:.1e}"
            + (f"; it was given in {dtype}, whose rounding (about 1e-7 for float32) is above the float64 "
               "tolerance" if low else ""),
            (f"build {argument} in float64, or pass twolayer.orthonormalize_rows({argument}.astype('float64')) "
             "explicitly (it is never done silently)") if low else
            (f"pass twolayer.orthonormalize_rows({argument}) explicitly "
             "(it is never done silently), or fix how the matrix is built"),
        )


class AssumptionError(TwoLayerInputError):
    """A theorem's assumption (THEORY.md) fails for the given input."""


class SolverError(RuntimeError):
    """Base of every solver failure: catch this one class (``except SolverError``)."""


class SolverStepLimitError(SolverError, TwoLayerInputError):
    """The ODE solver hit ``max_steps`` before reaching the last requested time.

    Also a :class:`TwoLayerInputError` (argument ``max_steps``) for backward compatibility.
    ``t_target`` is the time the solver aimed for; ``asked`` is what the user asked for
    (e.g. ``"t = inf (the steady state, integrated up to t_inf_max=1e+06)"``).
    """

    def __init__(self, max_steps: int, t_reached: float, t_target: float, detail: str = "",
                 asked: str = "", fix: str = ""):
        self.max_steps = int(max_steps)
        self.t_reached = float(t_reached)
        self.t_target = float(t_target)
        self.asked = asked or f"t={t_target:.6g}"
        TwoLayerInputError.__init__(
            self, "max_steps",
            f"the solver took max_steps={max_steps} steps and stopped at "
            f"t={t_reached:.6g} before reaching {self.asked}{detail}",
            fix or "increase max_steps, shorten ts, or use the stiff solver "
            "(solver='kvaerno5')",
        )


class SolverFailedError(SolverError):
    """The ODE solver failed for a reason other than the step limit."""


class SolverCertificateError(SolverFailedError):
    """A solution failed its a-posteriori certificate (see :mod:`twolayer.certificate`)
    even after further integration; ``certificate`` holds the numbers."""

    def __init__(self, message: str, certificate: dict | None = None):
        self.certificate = dict(certificate or {})
        super().__init__(message)


class NotConvergedError(SolverError):
    """An iteration to a limit (e.g. the regularised flow of :mod:`twolayer.regularized`) did
    not reach a certified one. ``fix`` says what to change; ``numbers`` holds the diagnosis."""

    def __init__(self, message: str, fix: str = "", **numbers):
        self.fix = fix
        self.numbers = numbers
        super().__init__(f"{message}. Fix: {fix}" if fix else message)


class NoLimitError(NotConvergedError):
    """The limit asked for does not exist: e.g. F_lam with an unpenalised head has its
    infimum lam sigma_min(G0)^2 at |v| = infinity and the flow runs off there
    (:func:`twolayer.regularized.no_limit_diagnosis`). Not a solver failure; ``numbers``
    holds the evidence (lam, t_end, F_end, F_inf, v_norm)."""


class PrecisionWarning(UserWarning):
    """Input given at a lower precision than float64 changes a derived quantity: e.g. X in
    float32 whose rounding noise counts as extra directions of S = rowspace(X)."""
