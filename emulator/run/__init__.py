"""The runner and the deterministic scheduler."""
