"""Streaming a run to the front end: binary frames and GIFs."""
