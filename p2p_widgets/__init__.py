"""p2p_widgets: Prompt-to-Prompt image editing in Jupyter notebooks.

Importing the package is cheap: torch, diffusers and the widgets load on first use of the
names below (module ``__getattr__``), so ``import p2p_widgets`` stays well under a second.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily)
_LAZY = {
    "load_tokenizer": "p2p_widgets.tokenizer",
    "Prompt": "p2p_widgets.prompts",
    "Mapper": "p2p_widgets.mapper",
    "align": "p2p_widgets.mapper",
    "AlphaSchedule": "p2p_widgets.schedule",
    "Replace": "p2p_widgets.rules",
    "Refine": "p2p_widgets.rules",
    "Reweight": "p2p_widgets.rules",
    "LocalBlend": "p2p_widgets.rules",
    "EditRule": "p2p_widgets.rules",
    "AttentionStore": "p2p_widgets.store",
    "Editor": "p2p_widgets.editor",
    "EditResult": "p2p_widgets.editor",
    "load_pocket": "p2p_widgets.pocket.model",
    "load_pipeline": "p2p_widgets.models",
    "TokenAligner": "p2p_widgets.widgets.aligner",
    "AlphaTimeline": "p2p_widgets.widgets.timeline",
    "AttentionPlayer": "p2p_widgets.widgets.player",
    "Studio": "p2p_widgets.widgets.studio",
    "Inversion": "p2p_widgets.inversion",
    "invert": "p2p_widgets.inversion",
    "spec_to_json": "p2p_widgets.export",
    "edit_from_spec": "p2p_widgets.export",
    "save_edit": "p2p_widgets.export",
    "load_edit": "p2p_widgets.export",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'p2p_widgets' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # cache: the next lookup is a plain attribute read
    return value


def __dir__():
    return sorted(__all__)
