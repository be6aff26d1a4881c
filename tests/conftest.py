"""Test configuration: a deterministic hypothesis profile (derandomized, no deadline:
JAX compiles on first use)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "twolayer",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("TWOLAYER_MAX_EXAMPLES", "20")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "twolayer"))
