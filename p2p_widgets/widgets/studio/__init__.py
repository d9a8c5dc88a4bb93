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

Modules: ``panel`` (:class:`StudioPanel`: prompts, seed, steps, guidance, edit kind, reweight
sliders, LocalBlend words, Run/Stop, results, export, a real image to edit; validated in
Python), ``app`` (:class:`Studio`: composes the panel with the
:class:`~p2p_widgets.widgets.aligner.TokenAligner`, the
:class:`~p2p_widgets.widgets.timeline.AlphaTimeline` and the
:class:`~p2p_widgets.widgets.player.AttentionPlayer`, and turns the settings into an
:class:`~p2p_widgets.engine.spec.EditSpec`), ``controller`` (the run thread and Stop) and
``image_input`` (a real image in).

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
