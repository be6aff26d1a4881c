"""`python -m paper_checks`: one pass/fail check with a margin for every claim of the paper."""

from experiments._checks import Status

from .runner import CLAIM_EXPERIMENTS, main, run_checks, valid_names

__all__ = ["run_checks", "main", "valid_names", "CLAIM_EXPERIMENTS", "Status"]
