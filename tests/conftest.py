"""Test configuration: a deterministic hypothesis profile (derandomized, no deadline:
JAX compiles on first use), and JAX's persistent compilation cache in
``.pytest_cache/jax`` (set ``TWOLAYER_JAX_CACHE`` to move it, ``off`` to disable), so
that the suite compiles the solver once across runs and processes."""

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

os.environ.setdefault("TWOLAYER_JAX_CACHE", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"))

settings.register_profile(
    "twolayer",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("TWOLAYER_MAX_EXAMPLES", "20")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "twolayer"))
