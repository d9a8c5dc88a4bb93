"""Jupyter widgets (anywidget) of p2p_widgets.

Names load lazily so that ``import p2p_widgets.widgets`` does not import ipywidgets/anywidget.
"""

from importlib import import_module

_LAZY = {
    "P2PWidget": "p2p_widgets.widgets._base",
    "MessageError": "p2p_widgets.errors",
    "on_message": "p2p_widgets.widgets._base",
    "PingWidget": "p2p_widgets.widgets.ping",
    "TokenAligner": "p2p_widgets.widgets.aligner",
    "AlphaTimeline": "p2p_widgets.widgets.timeline",
    "AttentionPlayer": "p2p_widgets.widgets.player",
    "Studio": "p2p_widgets.widgets.studio",
    "StudioPanel": "p2p_widgets.widgets.studio",
    "SweepExplorer": "p2p_widgets.widgets.sweep_explorer",
}

__all__ = list(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'p2p_widgets.widgets' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
