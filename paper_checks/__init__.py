"""`python -m paper_checks`: one pass/fail check with a margin for every claim of the paper."""

from .runner import CLAIM_EXPERIMENTS, run_checks

__all__ = ["run_checks", "CLAIM_EXPERIMENTS"]
