"""Benchmarks: ``python -m p2p_widgets.bench engine|stream|invert|threads`` (see engine.py), and the
model geometries they and the tests build (geometries.py)."""
