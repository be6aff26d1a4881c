"""Figure scripts: each draws one figure from cached results only (never simulates)."""
