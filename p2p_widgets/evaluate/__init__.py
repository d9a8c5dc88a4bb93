"""Evaluation as data: datasets of edit cases (PIE-Bench format, pocket-bench), methods (an
inversion plus an EditSpec template), metrics as the benchmark computes them, and sweeps that
write one row per (case, method, setting, seed)."""
