"""Equal to the authors' code: their implementations and ours, side by side, on one model.

``python -m p2p_widgets.bench reference [--masactrl DIR] [--pnp DIR] [--p2p DIR] [--steps N] [--dtype D]``

Each DIR is a checkout of the authors' repository (this repository never contains their code):
TencentARC/MasaCtrl, MichalGeyer/pnp-diffusers, google/prompt-to-prompt. The script builds one
random-weight model with SD 1.x's layout at 512 px (attention at 64x64, 32x32 and 16x16 latents,
so the authors' layer indices and size checks apply; channels shrunk for a CPU), runs the
authors' code and ours from the same start noise and prompts, and prints the maximum absolute
difference of the final latents against the tolerance (1e-4). float64 by default (see
:func:`build_reference_model`). Exit status 1 when a case fails, 2 for bad arguments.

Cases (default 6 steps, guidance 7.5):

- MasaCtrl: ``MutualSelfAttentionControl(start_step=4, start_layer=10)`` vs ours
  ``MutualSelfAttention(start_step=4, start_layer=10)``, one start noise for both prompts.
- Plug-and-Play, two rows: "PnP inversion" compares their ``preprocess.py`` DDIM inversion of a
  synthetic picture under "" (with as many steps as the edit; theirs defaults to 999) with ours;
  "Plug-and-Play" compares ``run_pnp`` (thresholds 0.8 / 0.5, no negative prompt: ours has none)
  with ours, both reading one inversion (ours, saved over theirs), so each row measures one method.
- P2P (ours with ``compat="reference"``): replace with a word window, refine (a phrase
  appended), reweight of a new word on refine, and LocalBlend on a replace whose word grows from
  one token to two. Windows are chosen where the authors' rounding over n + 1 steps differs from
  n; LocalBlend's threshold is 0.9 (a random model's maps are nearly flat: at 0.3 the mask would
  keep every pixel); the row says how much of the latent their mask kept.

How the authors' code runs here, at run time, leaving their files untouched (the printed output
lists the changes again):

- Imports: each checkout is first on ``sys.path`` while its modules import, then its modules
  leave ``sys.modules``. Packages their imports name that are not installed (``cv2``,
  ``torchvision``, ``pytorch_lightning``) are served by stand-ins from a finder placed last on
  ``sys.meta_path`` (after diffusers is imported; an installed package always wins) only during
  those imports; the stand-ins offer what the code paths used here touch (``ToTensor`` with
  torchvision's arithmetic) and raise if anything else is called. MasaCtrl needs ``einops``
  (``pip install einops``; the script says so if it is missing).
- Models: their classes get our model's components instead of ``from_pretrained`` (a copy of the
  UNet, which their code patches): ``MasaCtrlPipeline(**components)``; ``Preprocess`` and ``PNP``
  are built without their ``__init__`` (hub downloads, CUDA, file paths) and given the attributes
  it sets; P2P's notebook (``prompt-to-prompt_stable.ipynb``) runs its import and controller code
  cells from the JSON, with its model-loading cell replaced by our globals (``LOW_RESOURCE =
  False``, CPU, our tokenizer, DDIM instead of the hub model's PNDM).
- P2P on current diffusers: the attention class is ``Attention``, not ``CrossAttention``, and
  takes ``encoder_hidden_states`` / ``attention_mask``: the copy's attention modules get a
  subclass named ``CrossAttention`` with the old head-reshaping names, and the forward that
  ``register_attention_control`` installs is called with the old argument names;
  ``set_timesteps(n, offset=1)`` is the config's ``steps_offset`` today (checked equal). In
  float64, ``AttentionReplace``'s float32 mapper is cast for its einsum (its values are exact).
- Plug-and-Play: ``preprocess.device`` (set only under ``__main__``) is "cpu",
  ``Preprocess.get_text_embeds`` gets ``device="cpu"`` (its default is "cuda"), and in float64
  its VAE takes the float32 image tensor cast to the model's dtype.
- Results: the final latents are taken where the code decodes them (P2P's ``latent2image``,
  MasaCtrl's ``latent2image``, PnP's ``decode_latent``), which then skip the VAE.
"""

from .cli import CHECKOUTS, DEFAULT_STEPS, REPOSITORIES, check_checkout, checkouts_of, compare, main, parser, report
from .inputs import GUIDANCE, REFERENCE_UNET, SEED, SIZE, build_reference_model, start_noise, synthetic_image
from .masactrl import MASA_PROMPTS, MASACTRL_SCHEDULER, masactrl_authors, masactrl_ours
from .p2p import BLEND_THRESHOLD, P2P_CASES, P2PCase, old_attention_names, p2p_authors, p2p_namespace, p2p_ours
from .pnp import PNP_TARGET, pnp_authors_edit, pnp_authors_inversion, pnp_ours_edit, pnp_ours_inversion
from .row import TOLERANCE, Row, _measure, max_difference
from .shim import (
    Recorder,
    _bare,
    _components,
    _ddim,
    _missing,
    _patched,
    _quiet,
    _Resize,
    _stand_ins,
    _StandInFinder,
    _to_tensor,
    accept_offset,
    authors_imports,
    notebook_cells,
)

# the names the tests and bench/reference_style.py read from the package
__all__ = [
    "CHECKOUTS",
    "DEFAULT_STEPS",
    "REPOSITORIES",
    "check_checkout",
    "checkouts_of",
    "compare",
    "main",
    "parser",
    "report",
    "GUIDANCE",
    "REFERENCE_UNET",
    "SEED",
    "SIZE",
    "build_reference_model",
    "start_noise",
    "synthetic_image",
    "MASA_PROMPTS",
    "MASACTRL_SCHEDULER",
    "masactrl_authors",
    "masactrl_ours",
    "BLEND_THRESHOLD",
    "P2P_CASES",
    "P2PCase",
    "old_attention_names",
    "p2p_authors",
    "p2p_namespace",
    "p2p_ours",
    "PNP_TARGET",
    "pnp_authors_edit",
    "pnp_authors_inversion",
    "pnp_ours_edit",
    "pnp_ours_inversion",
    "TOLERANCE",
    "Row",
    "_measure",
    "max_difference",
    "Recorder",
    "_bare",
    "_components",
    "_ddim",
    "_missing",
    "_patched",
    "_quiet",
    "_Resize",
    "_stand_ins",
    "_StandInFinder",
    "_to_tensor",
    "accept_offset",
    "authors_imports",
    "notebook_cells",
]
