"""Studio: the whole Prompt-to-Prompt workflow in one widget.

>>> import p2p_widgets
>>> studio = p2p_widgets.Studio()        # the pocket model; or Studio(pipe) for any SD pipeline
>>> studio                                # type prompts, press Run; Stop ends a run early
>>> studio.run()                          # the same from Python (worker thread: the cell returns)
>>> studio.run(background=False)          # sampler in this cell (frames still stream live)
>>> studio.spec()                         # the EditSpec of the current settings
>>> studio.to_json()                      # the last edit as JSON; studio.load_json(text) reloads it
>>> studio.save_images("out/")            # source.png, edit.png (and baseline.png)
>>> studio.set_image("photo.png")         # edit a real image: the source prompt is its caption
>>> studio.clear_image()                  # back to images from a seed
>>> studio.player.to_gif("run.gif")       # the playback as an animated GIF
>>> studio.panel.method = "MutualSelfAttention"   # any registered rule with declared parameters
>>> studio.show("alignment")              # the section under the panel: playback, alignment, schedule

Modules: ``panel`` (:class:`StudioPanel`: prompts, seed, steps, guidance, the method and its
values, P2P's edit kind, reweight sliders, LocalBlend words, Run/Stop, results, export, a real
image to edit, the section tabs; validated in Python), ``methods`` (the method menu:
Prompt-to-Prompt and every registered :class:`~p2p_widgets.engine.rules.ParamRule`, whose controls
the page builds from ``Param.describe()`` and whose values ``Param.check`` validates), ``rules``
(the settings as one rule, P2P's, the method's or ``Combine(p2p, method)``, and a loaded edit's
rule back into settings), ``app`` (:class:`Studio`: one frame holding the panel and, under its
tabs, the :class:`~p2p_widgets.widgets.player.AttentionPlayer`, the
:class:`~p2p_widgets.widgets.aligner.TokenAligner` and the
:class:`~p2p_widgets.widgets.timeline.AlphaTimeline` (with the method's windows as read-only
bands); it turns the settings into an :class:`~p2p_widgets.engine.spec.EditSpec`), ``controller``
(the run thread and Stop) and ``image_input`` (a real image in).

The method menu: ``studio.panel.method = "MutualSelfAttention"`` (or the menu) runs MasaCtrl with
``studio.panel.method_values``; ``combine_p2p`` runs P2P's rule beside it where the rule leaves
cross-attention and the source's self-attention keys alone. A rule that follows the inversion
(Plug-and-Play) runs once an image is loaded; with one, the source prompt may be empty (DDIM
inversion under the empty prompt, as its authors read it). ``spec()`` exports the chosen rule and
``load_json`` restores the method and its values.

On a joint-attention model (SD3, Flux: ``Studio(flux_pipe)``) the menu holds Prompt-to-Prompt and
the rules that edit joint attention (K/V injection: Stable Flow, RF-Solver-Edit); rules written for
a UNet's self-attention or features (MasaCtrl, Plug-and-Play, StyleAligned) are left out and
refused by name, and K/V injection is left out on a UNet. The aligner and timeline show the
tokens the model attends to (its ``prompt``): Flux's T5 tokens (no BOS); on SD3 CLIP's and T5's,
a labelled pair of aligner rows each (links stay within a segment); the scheduler is the model's
own, the timeline's axis the model's shifted timesteps, the player's strip its double- then
single-stream blocks. The inversion menu
(``invert_choices``) holds the inversions the model takes, from ``engine.inversion.methods_of``:
null-text (the default), negative-prompt and DDIM on a UNet; FireFlow (the default), RF-Solver and
Euler on SD3 / Flux, where an edit of a real image samples back with its inversion's solver (the
timeline counts that solver's model calls). A method of the other family is refused by name; real
images are not offered where the model inverts none (``image_note``).

Runs go to a worker thread by default, so the kernel stays idle and the Stop button (a message
from the browser) reaches Python mid-run; with ``background=False`` the sampler runs in the
calling cell, frames still stream, but Stop only arrives after the cell ends. Interrupting the
kernel does not stop a worker thread: use Stop or :meth:`Studio.stop`. Errors (bad prompts,
words missing from a prompt, a failed run) show in the panel's banner and the Studio stays usable.

A real image (dropped on the panel, chosen with its file button, or :meth:`Studio.set_image`) is
inverted with the source prompt as its caption (``invert_method``, cached per image, prompt,
method, steps and guidance) before the edit runs from the inversion instead of a seed; the
results then show the input, its reconstruction (the source branch), the edit and, if asked,
the edit without P2P from the same inverted noise.
"""

from .app import Studio
from .panel import StudioPanel

__all__ = ["Studio", "StudioPanel"]
