"""p2p_widgets: Prompt-to-Prompt image editing in Jupyter notebooks.

Importing the package is cheap: torch, diffusers and the widgets load on first use of the
names below (module ``__getattr__``), so ``import p2p_widgets`` stays well under a second.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily)
_LAZY = {
    "load_tokenizer": "p2p_widgets.engine.tokenizer",
    "Prompt": "p2p_widgets.engine.prompts",
    "Mapper": "p2p_widgets.engine.mapper",
    "align": "p2p_widgets.engine.mapper",
    "AlphaSchedule": "p2p_widgets.engine.schedule",
    "Replace": "p2p_widgets.engine.rules",
    "Refine": "p2p_widgets.engine.rules",
    "Reweight": "p2p_widgets.engine.rules",
    "LocalBlend": "p2p_widgets.engine.blend",
    "EditRule": "p2p_widgets.engine.rules",
    "AttentionStore": "p2p_widgets.engine.store",
    "Editor": "p2p_widgets.engine.sampler",
    "EditResult": "p2p_widgets.engine.sampler",
    "load_pocket": "p2p_widgets.pocket.model",
    "load_flow_pocket": "p2p_widgets.pocket.flow",
    "load_pipeline": "p2p_widgets.models",
    "TokenAligner": "p2p_widgets.widgets.aligner",
    "AlphaTimeline": "p2p_widgets.widgets.timeline",
    "AttentionPlayer": "p2p_widgets.widgets.player",
    "Studio": "p2p_widgets.widgets.studio",
    "SweepExplorer": "p2p_widgets.widgets.sweep_explorer",
    "BlockProbe": "p2p_widgets.widgets.block_probe",
    "Inversion": "p2p_widgets.engine.inversion",
    "invert": "p2p_widgets.engine.inversion",
    "spec_to_json": "p2p_widgets.engine.export",
    "EditSpec": "p2p_widgets.engine.spec",
    "register_rule": "p2p_widgets.engine.rules",
    "rule_from_dict": "p2p_widgets.engine.rules",
    "ParamRule": "p2p_widgets.engine.rules",
    "Param": "p2p_widgets.engine.params",
    "Combine": "p2p_widgets.engine.rules",
    "MutualSelfAttention": "p2p_widgets.engine.controls",
    "MaskedMutualSelfAttention": "p2p_widgets.engine.controls",
    "PlugAndPlay": "p2p_widgets.engine.controls",
    "StyleAligned": "p2p_widgets.engine.controls",
    "KVInjection": "p2p_widgets.engine.joint_controls",
    "ModelBackend": "p2p_widgets.engine.models",
    "backend_for": "p2p_widgets.engine.models",
    "edit_from_spec": "p2p_widgets.engine.export",
    "save_edit": "p2p_widgets.engine.export",
    "load_edit": "p2p_widgets.engine.export",
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
