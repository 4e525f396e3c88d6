"""Lifecycle: retention curves, the decay pass, recall accounting, inspection, plots."""
