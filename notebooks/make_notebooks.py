"""Write the teaching notebooks in notebooks/ (run after editing their cells here).

The notebooks are product: each runs top to bottom on a 2-core CPU with the pocket model in well
under 90 s, and tests/test_notebooks.py executes them and checks the figures each promises
(``metadata.p2p_widgets.min_figures``).
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parent

SETUP = """import torch
import p2p_widgets as p2p
from p2p_widgets import plots

torch.set_grad_enabled(False)
pipe = p2p.load_pocket()          # the embedded pocket model: offline, CPU, ~20 MB
editor = p2p.Editor(pipe)
STEPS, GUIDANCE = 25, 5.0          # what the pocket model was evaluated with"""

NOTEBOOKS = {}


class md(str):  # noqa: N801 (reads as a cell marker in the lists below)
    """A markdown cell; every other string in a notebook's list is a code cell."""


# the quickstart runs at pocket-bench's 10 steps: a first Run All in seconds, and on this model the
# images and the measured layout rate match those of 25 steps (notebook text and README)
QUICK_SETUP = SETUP.replace(
    "STEPS, GUIDANCE = 25, 5.0          # what the pocket model was evaluated with",
    "STEPS, GUIDANCE = 10, 5.0          # 10 DDIM steps, as pocket-bench runs (25 look the same here)",
)
assert QUICK_SETUP != SETUP

NOTEBOOKS["01_quickstart"] = (
    2,
    [
        md(
            "# Quickstart: edit an image by editing its prompt\n\n"
            "Prompt-to-Prompt denoises the source prompt and the edited prompt **together from the same noise**. "
            "At every step the edit borrows the source's cross-attention maps (which pixels look at which word), "
            "so the layout survives while the changed word changes the content.\n\n"
            "Everything here runs on the embedded *pocket* model: a small latent diffusion model trained on "
            "procedural scenes of shapes, so it works offline on a laptop CPU in seconds."
        ),
        QUICK_SETUP,
        md("## Make an image"),
        """source = "a big red star left of a small blue square on a gray background"
first = editor.sample(source, seed=3, steps=STEPS, guidance=GUIDANCE)
plots.images(first.images, [source])""",
        md(
            "## Edit it by changing one word, over several seeds\n\n"
            "`baseline=True` also renders the edited prompt from the same seed *without* attention injection: "
            "the naive approach. One seed proves little either way, so here are three, one per row: the source, "
            "the same seed without P2P, and the P2P edit. Each title's number is its **object overlap**: the "
            "IoU of all of that image's object pixels (both objects together, read from the image) with the "
            "source's, 1.00 when every object stayed where it was, whatever its colour."
        ),
        """from p2p_widgets.pocket.metrics import layout_iou

target = "a big red star left of a small green square on a gray background"
seeds = (1, 2, 3)
runs = [editor.edit(source, target, seed=s, steps=STEPS, guidance=GUIDANCE, baseline=True) for s in seeds]
result = runs[seeds.index(3)]  # seed 3, the source above
kept = [(layout_iou(r.images[0], r.baseline[1]), layout_iou(r.images[0], r.images[1])) for r in runs]
plots.images([im for r in runs for im in (r.images[0], r.baseline[1], r.images[1])],
             [t for s, (without, with_p2p) in zip(seeds, kept)
              for t in (f"seed {s}: source", f"no P2P: object overlap {without:.2f}",
                        f"with P2P: object overlap {with_p2p:.2f}")],
             height=200, columns=3)""",
        md(
            "Seed by seed the numbers vary: a few seeds prove little. The rate below is another measure: the "
            "**untouched object's IoU**, the mask of the object the edit did not name (found in each image by "
            "the evaluation's reader) against its mask in the source, averaged over 32 seeds of two-object "
            "scenes at these settings (`python -m p2p_widgets.pocket.eval pocket --steps 10 --kinds color_swap`). "
            "A colour swap keeps it at 0.83 with P2P against 0.49 without (0.84 and 0.49 at 25 steps, README). "
            "It is not the titles' object overlap, which counts both objects, the recoloured one too: P2P keeps "
            "the layout most of the time on this model, not always."
        ),
        md(
            "## Where each word looks\n\nThe source's cross-attention per word, averaged over steps and layers, "
            "at the 8x8 grid (on this model the layout lives there; 16x16 is close to uniform). One colour scale "
            "for all words: brighter is more attention."
        ),
        "plots.token_maps(result.store, result.prompts[0], words=['red', 'star', 'blue', 'square', 'background'], side=8)",
        md(
            "## The Studio\n\nAll of it in one widget: prompts, the token aligner, the alpha timeline, live attention "
            "playback while sampling runs, export."
        ),
        """studio = p2p.Studio(pipe)
studio""",
    ],
)

NOTEBOOKS["02_cross_attention"] = (
    3,
    [
        md(
            "# Cross-attention, seen\n\n"
            "In a cross-attention layer every latent pixel *i* asks a question `Q[i]`; every prompt token *j* "
            "offers a key `K[j]` and a value `V[j]`. The weights `A[i, :] = softmax(Q[i] K^T / sqrt(d))` say how "
            "much pixel *i* reads from each token; the output is `A V`. A word's column of `A`, laid out on the "
            "pixel grid, is its *attention map*."
        ),
        SETUP,
        md(
            "## Q, K, V for one pixel, by hand\n\nWe capture one cross-attention layer's inputs with a forward hook "
            "and compute the weights ourselves."
        ),
        """prompt = "a big yellow triangle above a small purple circle on a black background"
captured = {}
layer = pipe.unet.up_blocks[0].attentions[0].transformer_blocks[0].attn2   # an 8x8 cross-attention layer
def grab(module, args, kwargs, output):    # a forward hook must return None (or it replaces the output)
    captured['x'] = (args, kwargs)          # the last call wins: the final, least noisy step
hook = layer.register_forward_hook(grab, with_kwargs=True)
try:
    result = editor.sample(prompt, seed=1, steps=STEPS, guidance=GUIDANCE)
finally:
    hook.remove()
args, kwargs = captured['x']
hidden, context = args[0], kwargs['encoder_hidden_states']
q, k, v = layer.to_q(hidden), layer.to_k(context), layer.to_v(context)
heads = layer.heads
d = q.shape[-1] // heads
cond = hidden.shape[0] - 1                       # the last batch row is the conditional prompt
pixel = 27                                       # a latent pixel of the 8x8 grid
qi = q[cond, pixel].view(heads, d)
kj = k[cond].view(-1, heads, d).transpose(0, 1)
weights = torch.softmax((kj @ qi[:, :, None])[..., 0] * d ** -0.5, dim=-1).mean(0)   # head average
prompt_obj = result.prompts[0]
top = weights[:prompt_obj.n_tokens].topk(4)
[(prompt_obj.tokens[i], round(float(w), 3)) for w, i in zip(top.values, top.indices)]""",
        md(
            "Every row of `A` sums to 1. Most of the mass lands on BOS and EOS (a well-known 'sink'); the rest is "
            "what the pixel draws from the words."
        ),
        "float(weights.sum())",
        md("## Per-token maps, and how they sharpen as sampling goes on"),
        """words = ['yellow', 'triangle', 'purple', 'circle', 'background']
plots.token_maps(result.store, result.prompts[0], words=words, side=8, step=0)""",
        "plots.token_maps(result.store, result.prompts[0], words=words, side=8, step=STEPS - 1)",
        """import math
def entropy(m):
    p = m.flatten().clamp_min(0); p = p / p.sum()
    return float(-(p * (p + 1e-12).log()).sum() / math.log(p.numel()))
curves = [[entropy(result.store.token_maps(0, prompt_obj.positions(w), side=8, step=t).mean(0)) for t in range(STEPS)]
          for w in ('triangle', 'circle')]
plots.curve(range(STEPS), curves, ['triangle', 'circle'], 'maps sharpen: normalised entropy per step',
            'UNet evaluation', 'entropy (1 = uniform)')""",
        md("## Two resolutions\n\nThe pocket UNet attends at 16x16 and 8x8. Coarse layers carry the layout."),
        "plots.token_maps(result.store, result.prompts[0], words=words, side=16)",
        md(
            "## Heads and UNet parts differ\n\nThe maps above average every head and layer. A store made with "
            "`detail=True` also keeps each head, per UNet part (down, mid, up): heads specialise, and the "
            "encoder ('down') and decoder ('up') see the words differently."
        ),
        """from p2p_widgets import AttentionStore
detail = AttentionStore(detail=True)
editor.sample(prompt, seed=1, steps=STEPS, guidance=GUIDANCE, store=detail)
display(plots.token_maps(detail, prompt_obj, words=words, side=8, place='down'))
plots.token_maps(detail, prompt_obj, words=words, side=8, place='up')""",
        "plots.head_maps(detail, prompt_obj, 'triangle', side=8, place='up')",
        md(
            "## Self-attention's principal components\n\nSelf-attention maps (pixel -> pixel) group pixels of the "
            "same object. Their top three principal components, shown as RGB, outline the scene."
        ),
        """captured = {}
layer = pipe.unet.up_blocks[0].attentions[0].transformer_blocks[0].attn1   # 8x8 self-attention
hook = layer.register_forward_hook(lambda mod, args, kwargs, out: captured.update(x=args[0]), with_kwargs=True)
try:
    editor.sample(prompt, seed=1, steps=STEPS, guidance=GUIDANCE)
finally:
    hook.remove()
h = captured['x'][-1:]
q, k = layer.to_q(h), layer.to_k(h)
A = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)[0]   # (64, 64)
U, S, V = torch.pca_lowrank(A, q=3)
pcs = (A @ V).reshape(8, 8, 3)
pcs = (pcs - pcs.amin((0, 1))) / (pcs.amax((0, 1)) - pcs.amin((0, 1)))
plots.images([result.images[0], (pcs * 255).byte().numpy().repeat(4, 0).repeat(4, 1)], ['image', 'self-attention PCA'])""",
    ],
)

NOTEBOOKS["03_mapper"] = (
    3,
    [
        md(
            "# The mapper M\n\nWhen the prompts differ, the edit needs to know which source token feeds which target "
            "token: `M[i, j]` is the weight with which source token *i* feeds target token *j*, and the edit's "
            "injected attention is `A_src @ M`."
        ),
        """import p2p_widgets as p2p
from p2p_widgets import plots
tok = p2p.load_tokenizer()""",
        md("## A word swap: one to one"),
        """m = p2p.align("a big red circle on a gray background", "a big red square on a gray background", tok)
plots.mapper_matrix(m)""",
        md("## A multi-token word\n\n'jellybeans' is two CLIP tokens; the source word's mass is spread over both."),
        """m = p2p.align("a photo of a cat", "a photo of a jellybeans", tok)
[(m.source.tokens[i], m.target.tokens[j], round(w, 2)) for i, j, w in m.links if 3 < j < 7]""",
        md(
            "## A phrase for a word: 'orange' -> 'big tabby'\n\nEach piece of the phrase gets half of 'orange'. "
            "Tokens after the phrase keep their offset (the reference implementation shifted them onto the wrong "
            "tokens after a length change)."
        ),
        """m = p2p.align("a photo of an orange cat", "a photo of an big tabby cat", tok, kind="replace")
plots.mapper_matrix(m)""",
        md(
            "## Refine: inserted words are new tokens\n\nA global alignment of the token ids; new tokens keep their "
            "own attention (`aligned` = 0)."
        ),
        """m = p2p.align("a red circle on a gray background", "a red circle on a striped gray background", tok)
print(m.kind, [t for t, a in zip(m.target.tokens, m.aligned.tolist()) if a == 0])
plots.mapper_matrix(m)""",
        md(
            "## Build M by hand\n\nDrag source tokens onto target tokens in the aligner; `aligner.mapper` is the "
            "engine's Mapper, validated in Python."
        ),
        """aligner = p2p.TokenAligner("a photo of an orange cat", "a photo of an big tabby cat")
aligner""",
        "aligner.mapper.matrix[:8, :9]",
    ],
)

NOTEBOOKS["04_alpha_schedules"] = (
    3,
    [
        md(
            "# Alpha schedules: how long the edit borrows the source's attention\n\n"
            "Injecting for the first part of sampling fixes the layout; stopping lets the new word change the "
            "content. The paper's figure sweeps the injected fraction from 0% to 100%."
        ),
        SETUP,
        """import numpy as np
source = "a small red circle left of a big blue square on a beige background"
target = "a small red star left of a big blue square on a beige background"
fractions = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
runs = [editor.edit(source, target, seed=5, steps=STEPS, guidance=GUIDANCE, cross=f, self_attn=min(f, 0.4)) for f in fractions]
plots.images([runs[0].images[0]] + [r.images[1] for r in runs], ['source'] + [f'{int(f * 100)}%' for f in fractions])""",
        md("Distance from the source image: more injection keeps more of it."),
        """dist = [float(np.abs(np.asarray(r.images[1], float) - np.asarray(r.images[0], float)).mean()) for r in runs]
plots.curve([int(f * 100) for f in fractions], [dist], ['mean |edit - source|'], 'injection sweep', '% of steps injected', 'pixel difference')""",
        md(
            "## Per-word windows\n\nA word can stop borrowing earlier than the rest (`words={'star': 0.2}`), "
            "giving it freedom to change shape while everything else stays put."
        ),
        """schedule = p2p.AlphaSchedule.build(STEPS, cross=0.8, self_attn=0.4, words={"star": 0.2})
plots.schedule(schedule, editor.prompt(target))""",
        """per_word = editor.edit(source, target, seed=5, steps=STEPS, guidance=GUIDANCE, cross=0.8, words={"star": 0.2})
plots.images([per_word.images[0], runs[4].images[1], per_word.images[1]], ['source', 'cross 0.8', "cross 0.8, 'star' 0.2"])""",
        md("## The timeline widget\n\nDrag window edges; `timeline.schedule` is the engine's schedule."),
        """timeline = p2p.AlphaTimeline(target, steps=STEPS, scheduler=pipe.scheduler)
timeline""",
        "timeline.schedule",
    ],
)

NOTEBOOKS["05_reweight_and_local"] = (
    2,
    [
        md(
            "# Reweighting and local edits\n\n**Reweight** scales a word's column of the attention (a fader; "
            "negative values push the concept away). **LocalBlend** keeps every pixel outside the edited words' "
            "attention mask identical to the source."
        ),
        SETUP,
        md("## One word as a fader\n\nSeveral edited copies of the same prompt run in one batch, one weight each."),
        """prompt = "a big purple star on a white background"
values = [-2.0, 0.0, 1.0, 3.0, 6.0]
sweep = editor.edit(prompt, [prompt] * len(values), reweight=[{"purple": v} for v in values],
                    seed=2, steps=STEPS, guidance=GUIDANCE)
plots.images(sweep.images, ['source'] + [f'purple x{v:g}' for v in values])""",
        md("## LocalBlend: change one object, keep the rest bit for bit"),
        """import numpy as np
source = "a small green triangle above a big orange square on a gray background"
target = "a small green triangle above a big pink square on a gray background"
blend = p2p.LocalBlend(["square"], threshold=0.3, start=0.2)
local = editor.edit(source, target, seed=4, steps=STEPS, guidance=GUIDANCE, blend=blend, baseline=True)
plain = editor.edit(source, target, seed=4, steps=STEPS, guidance=GUIDANCE)
plots.images([local.images[0], local.baseline[1], plain.images[1], local.images[1]],
             ['source', 'same seed', 'P2P', 'P2P + LocalBlend'])""",
        """changed = lambda r: float((np.abs(np.asarray(r.images[1], float) - np.asarray(r.images[0], float)).sum(-1) > 8).mean())
{'pixels changed, P2P': changed(plain), 'pixels changed, P2P + LocalBlend': changed(local)}""",
    ],
)

NOTEBOOKS["06_custom_rules"] = (
    1,
    [
        md(
            "# Prototyping a custom edit rule\n\nA rule decides, per layer and step, how an edited prompt mixes its "
            "attention with the source's. In the *linear form* it returns `(P, q)` with "
            "`A_new = A_src @ P + A_edit * q`; such rules run on the fast path (fused attention, no n x n maps). "
            "Rules written on explicit maps run on the explicit path."
        ),
        SETUP,
        """from p2p_widgets.engine.rules import EditRule, Replace
source = "a big red circle left of a small white star on a black background"
target = "a big red square left of a small white star on a black background"
mapper = p2p.align(source, target, editor.tokenizer)
schedule = p2p.AlphaSchedule.build(STEPS, cross=0.8, self_attn=0.4)""",
        md("## Rule 1: inject only in the decoder"),
        """class DecoderOnly(EditRule):
    def __init__(self, inner):
        self.inner = inner
    def cross_weights(self, ctx):
        return self.inner.cross_weights(ctx) if ctx.place == "up" else None
    def self_weight(self, ctx):
        return self.inner.self_weight(ctx) if ctx.place == "up" else 0.0""",
        md("## Rule 2: ramp alpha down smoothly instead of a hard switch"),
        """class Ramp(EditRule):
    def __init__(self, mapper, steps):
        self.mapper, self.steps = mapper, steps
    def cross_weights(self, ctx):
        g = max(0.0, 1.0 - ctx.step / (0.8 * self.steps))       # 1 -> 0 over the first 80% of steps
        return self.mapper.matrix * g, torch.full((77,), 1.0 - g)""",
        md("## Rule 3 (explicit maps): sharpen the source's maps before injecting"),
        """class Sharpened(EditRule):
    explicit_only = True
    def __init__(self, inner):
        self.inner = inner
    def edit_cross(self, ctx, a_src, a_edit):
        if ctx.step >= 0.8 * ctx.n_evals:
            return a_edit
        sharp = a_src ** 2
        return (sharp / sharp.sum(-1, keepdim=True)) @ self.inner.mapper.matrix.to(a_src)""",
        """common = dict(seed=6, steps=STEPS, guidance=GUIDANCE)
builtin = editor.edit(source, target, **common)
decoder = editor.edit(source, target, rules=[DecoderOnly(Replace(mapper, schedule))], **common)
ramp = editor.edit(source, target, rules=[Ramp(mapper, STEPS)], **common)
sharp = editor.edit(source, target, rules=[Sharpened(Replace(mapper, schedule))], mode="explicit", **common)
plots.images([builtin.images[0], builtin.images[1], decoder.images[1], ramp.images[1], sharp.images[1]],
             ['source', 'built-in Replace', 'decoder only', 'smooth ramp', 'sharpened (explicit)'])""",
        md("The fast path and the explicit oracle agree on linear rules:"),
        """check = editor.edit(source, target, rules=[Ramp(mapper, STEPS)], mode="explicit", **common)
float((check.latents - ramp.latents).abs().max())""",
        md(
            "## Save an edit that uses your rule\n\n"
            "Register the class and give it `to_dict` / `from_dict`: the edit's JSON then names the rule and "
            "`load_edit` rebuilds it (in a fresh kernel, run the class's cell first). An unregistered rule "
            "runs but refuses to export, saying how to register it."
        ),
        """import tempfile
from pathlib import Path

from p2p_widgets.engine.rules import rule_from_dict


@p2p.register_rule
class SavedDecoderOnly(DecoderOnly):
    def to_dict(self):
        return {"rule": "SavedDecoderOnly", "inner": self.inner.to_dict()}

    @classmethod
    def from_dict(cls, data, source, target):
        return cls(rule_from_dict(data["inner"], source, target))


saved = editor.edit(source, target, rules=[SavedDecoderOnly(Replace(mapper, schedule))], **common)
path = Path(tempfile.mkdtemp()) / "decoder_only.json"
p2p.save_edit(saved, path)
again = p2p.load_edit(editor, path)
print(p2p.EditSpec.from_json(path.read_text()).rules[0]["rule"], "reruns bitwise:", bool(torch.equal(again.latents, saved.latents)))""",
    ],
)

NOTEBOOKS["07_real_checkpoints"] = (
    1,
    [
        md(
            "# Real checkpoints: Stable Diffusion 1.5 / 2.1 / SDXL\n\nThe same workflow runs on any SD 1.x / 2.x or "
            "SDXL base checkpoint diffusers loads (weights through safetensors only). On a GPU use 50 steps and "
            "guidance 7.5; for SDXL (e.g. `stabilityai/stable-diffusion-xl-base-1.0`) use 1024 px, where its "
            "attention grids are 32x32 and 64x64 (it has no attention at the finest level)."
        ),
        """import torch
import p2p_widgets as p2p
from p2p_widgets import plots
torch.set_grad_enabled(False)
CHECKPOINT = "stable-diffusion-v1-5/stable-diffusion-v1-5"   # or a local folder
try:
    pipe = p2p.load_pipeline(CHECKPOINT)
    real = True
except Exception as exc:   # no network or no weights here
    print(f"Could not load {CHECKPOINT!r} ({type(exc).__name__}). This machine cannot download weights, so the "
          "cells below run the same code on a model built from SD's geometry with random weights: the images "
          "are noise, but every call is the one you would make with real weights.")
    from p2p_widgets.bench.catalog import build_model
    pipe = build_model("sdgeom", "cpu", torch.float32)
    real = False
editor = p2p.Editor(pipe)
size, steps = (512, 50) if real else (256, 4)""",
        """source, target = "a photo of a cat riding a bicycle", "a photo of a dog riding a bicycle"
result = editor.edit(source, target, seed=0, steps=steps, height=size, width=size, baseline=True,
                     reweight={"dog": 1.5}, cross=0.8, self_attn=0.4)
plots.images([result.images[0], result.baseline[1], result.images[1]], ['source', 'same seed', 'P2P'])""",
        md("Attention is stored at every grid up to 32x32 (for SD 1.5 at 512 px: 32, 16 and 8):"),
        "[g for g in result.store.grids]",
    ],
)


NOTEBOOKS["08_real_images"] = (
    2,
    [
        md(
            "# Editing real images: inversion, then Prompt-to-Prompt\n\n"
            "P2P edits images the model generated, because it knows their starting noise. To edit a picture of "
            "your own, first find noise that regenerates it: **invert** it. DDIM inversion runs the sampler "
            "backwards; at the guidance used for editing the regenerated image drifts, so **null-text inversion** "
            "(Mokady et al.) also optimises the unconditional embedding of every step until the guided sampler "
            "retraces the inversion. **Negative-prompt inversion** uses the prompt itself as the unconditional "
            "embedding: no optimisation, nearly as faithful."
        ),
        SETUP,
        md(
            "## A picture the model never generated\n\nDrawn by the scene generator (not by the model), so we "
            "know its objects' true masks. Its caption becomes the source prompt."
        ),
        """import numpy as np
from p2p_widgets.pocket.scenes import sample_scene
from p2p_widgets.pocket.metrics import psnr
scene = sample_scene(np.random.default_rng(7), p_two=1.0, p_pattern=0.0)
photo, caption = scene.image, scene.caption
print(caption)""",
        md("## Three inversions, regenerated with the caption"),
        """inversions = {m: editor.invert(photo, caption, method=m, steps=STEPS, guidance=GUIDANCE)
              for m in ("ddim", "negative-prompt", "null-text")}
recons = {m: inv.reconstruct(editor).images[0] for m, inv in inversions.items()}
for m, inv in inversions.items():
    print(f"{m:16s} {inv.seconds:5.1f} s   PSNR {psnr(photo, np.asarray(recons[m])):.1f} dB")
plots.images([photo, *recons.values()], ["input", *recons])""",
        md(
            "## Edit it: a colour swap\n\nFor an attribute of a real photo, keep its self-attention through the whole "
            "run (the layout is the photo's) and blend locally on the object's words, so nothing else is "
            "regenerated."
        ),
        """a = scene.objects[0]
new_colour = next(c for c in ("green", "purple", "orange", "pink") if c not in caption)
target = caption.replace(f"{a.color} {a.shape}", f"{new_colour} {a.shape}", 1)
inv = inversions["null-text"]
plain = inv.edit(editor, target)
local = inv.edit(editor, target, self_attn=1.0,
                 blend=p2p.LocalBlend([[a.color, a.shape], [new_colour, a.shape]], threshold=0.5))
plots.images([photo, plain.images[1], local.images[1]], ["input", "P2P defaults", "self 1.0 + LocalBlend"])""",
        md(
            "## Save the edit with its inversion, rerun it later\n\n`save_edit` writes the edit's JSON and the "
            "inversion (latents, embeddings, image) beside it as safetensors; `load_edit` reruns it exactly."
        ),
        """import tempfile
folder = tempfile.mkdtemp()
files = p2p.save_edit(local, f"{folder}/edit.json", inv)
print([f.name for f in files])
torch.equal(p2p.load_edit(editor, f"{folder}/edit.json").latents, local.latents)""",
        md(
            "In the Studio: `studio.set_image(photo)` (or its file button / drop zone), type the caption as the "
            "source, choose the inversion method, Run."
        ),
    ],
)

NOTEBOOKS["09_rule_gallery"] = (
    5,
    [
        md(
            "# A gallery of attention-control rules\n\n"
            "Prompt-to-Prompt is one of a family of methods that edit an image by reading and writing tensors "
            "inside the UNet while a source and an edit are denoised together. Here four of them run on the same "
            "edits, each written as a *rule* on the engine's hooks:\n\n"
            "- **Prompt-to-Prompt** mixes the source's cross-attention probabilities into the edit's "
            "(which pixels look at which word) and shares its self-attention early on;\n"
            "- **MasaCtrl** lets the edit's self-attention *queries* read the source's *keys and values* in the "
            "decoder from step 4: the edit may move things, but it draws them with the source's appearance;\n"
            "- **Plug-and-Play** copies the source's decoder features and self-attention queries and keys early "
            "in the run, with the source walking the inverted image's own trajectory;\n"
            "- **StyleAligned** lets every self-attention layer also attend to the source, with the edit's "
            "queries and keys normalised to the source's statistics (AdaIN)."
        ),
        SETUP,
        md(
            "## One edit, five ways\n\n"
            'The edit changes the *relation* ("left of" becomes "above"), which needs a new layout. Without '
            "control the model draws a new image; P2P keeps the source's layout (so the relation does not "
            "change); MasaCtrl changes the layout but keeps the objects' look."
        ),
        """source = "a big red star left of a small blue square on a gray background"
target = "a big red star above a small blue square on a gray background"
run = dict(seed=3, steps=STEPS, guidance=GUIDANCE)
swap = editor.build_rules(editor.prompt(source), [editor.prompt(target)], STEPS, self_attn=0.0)[0]
methods = {
    "no control": p2p.EditRule(),
    "Prompt-to-Prompt": None,                      # the default rule built from the prompts
    "MasaCtrl": p2p.MutualSelfAttention(),
    "StyleAligned": p2p.StyleAligned(),
    "P2P + MasaCtrl": p2p.Combine(swap, p2p.MutualSelfAttention()),
}
results = {name: editor.edit(source, target, rules=None if rule is None else [rule], **run)
           for name, rule in methods.items()}
plots.images([results["no control"].images[0], *(r.images[1] for r in results.values())],
             ["source", *results], height=200)""",
        md(
            "## What each rule touched\n\n"
            "Every run records which layers a rule actually changed at each step (`result.controlled`). The "
            "diagram lays the UNet out in execution order (encoder, middle, decoder) and colours each layer by "
            "the share of steps it was under control. P2P edits cross-attention everywhere during its window "
            "and self-attention at the coarse layers; MasaCtrl only the decoder's self-attention."
        ),
        """for name in ("Prompt-to-Prompt", "MasaCtrl"):
    display(plots.unet_diagram(pipe, results[name].controlled).update_layout(title=name))""",
        md(
            "## An inverted picture\n\n"
            "A scene drawn by the generator (the model never made it) is inverted first. P2P and MasaCtrl start "
            "from a negative-prompt inversion under its caption; Plug-and-Play from a DDIM inversion under the "
            "empty prompt, as its authors do: its source row then walks that trajectory exactly, and the edit "
            "copies its features and self-attention queries and keys for the first 80 % and 50 % of the run."
        ),
        """import numpy as np
from p2p_widgets.pocket.scenes import sample_scene
scene = sample_scene(np.random.default_rng(7), p_two=1.0, p_pattern=0.0)
photo, caption = scene.image, scene.caption
a = scene.objects[0]
colour = next(c for c in ("green", "purple", "orange", "pink") if c not in caption)
edited = caption.replace(f"{a.color} {a.shape}", f"{colour} {a.shape}", 1)
print(caption, "->", edited)
inv = editor.invert(photo, caption, method="negative-prompt", steps=STEPS, guidance=GUIDANCE)
inv_empty = editor.invert(photo, "", method="ddim", steps=STEPS)
real = {
    "no control": inv.edit(editor, edited, rules=[p2p.EditRule()]),
    "Prompt-to-Prompt": inv.edit(editor, edited),
    "MasaCtrl": inv.edit(editor, edited, rules=[p2p.MutualSelfAttention()]),
    "Plug-and-Play": editor.edit("", edited, rules=[p2p.PlugAndPlay()], inversion=inv_empty,
                                 steps=STEPS, guidance=GUIDANCE),
}
plots.images([photo, *(r.images[1] for r in real.values())], ["input", *real], height=200)""",
        """plots.unet_diagram(pipe, real["Plug-and-Play"].controlled).update_layout(title="Plug-and-Play")""",
        md(
            "## Write your own rule\n\n"
            "A rule is a class with the hooks it needs and its parameters declared once. This one keeps the edit's "
            "own queries and keys in the decoder but reads the *source's values* from a chosen step: where the "
            "edit looks is its own, what it sees there is the source's. Registering it makes it travel in the "
            "edit's JSON, appear in the Studio's method menu and in sweep grids, with no code anywhere else."
        ),
        """@p2p.register_rule
class SourceValues(p2p.ParamRule):
    \"\"\"Decoder self-attention reads the source's values from `start_step` on.\"\"\"
    branches = "both"                       # the unconditional half too, each from its own source row
    params = (p2p.Param("start_step", "int", 5, "first step with the source's values", low=0),)

    def self_qkv(self, ctx, src, edit):     # each of src, edit: (q, k, v), tensors (1, heads, tokens, dim)
        if ctx.place != "up" or ctx.step < self.start_step:
            return None                     # this layer stays one plain fused attention call
        return edit[0], edit[1], src[2]

mine = editor.edit(source, target, rules=[SourceValues(start_step=3)], **run)
oracle = editor.edit(source, target, rules=[SourceValues(start_step=3)], mode="explicit", **run)
print("fused vs materialised attention, max latent difference:",
      float((mine.latents - oracle.latents).abs().max()))
plots.images([mine.images[0], results["no control"].images[1], mine.images[1]],
             ["source", "no control", "SourceValues"], height=200)""",
        md(
            "The explicit path materialises every attention matrix and applies the same hooks to it: the oracle "
            "the fused path is tested against. The edit saves to JSON and opens in the Studio, whose method menu "
            "now lists `SourceValues` with a control for `start_step`."
        ),
        """spec_json = mine.spec.to_json()
again = editor.run(p2p.EditSpec.from_json(spec_json))
print("rerun from JSON is bitwise equal:", torch.equal(again.latents, mine.latents))
studio = p2p.Studio(pipe)
studio.load_json(spec_json)
studio""",
    ],
)

NOTEBOOKS["10_sweeps"] = (
    1,
    [
        md(
            "# Sweeps: a method over a grid of settings, and the results as a grid of images\n\n"
            "`run_sweep` runs every (case, method, setting, seed) of a grid on a folder in PIE-Bench's format and "
            "writes one row per run (its scores, its image and its edit as JSON), resumable. `SweepExplorer` lays "
            "the rows out as images by two chosen columns, a score as colour; a click loads that row's edit into "
            "the Studio.\n\n"
            "Here, kept to seconds: two pocket-bench cases (a colour change and a shape change), P2P after DDIM "
            "inversion over two cross-attention and two self-attention windows, two seeds: 16 rows at 4 DDIM "
            "steps, scored with the measures that need no downloaded networks. Everything is written to a "
            "temporary folder, outside the clone."
        ),
        """import tempfile
from pathlib import Path

import torch
from p2p_widgets.evaluate import figures
from p2p_widgets.evaluate.pocket_bench import make_pocket_bench
from p2p_widgets.evaluate.report import model_free_scores
from p2p_widgets.evaluate.sweep import load_sweep, run_sweep

torch.set_grad_enabled(False)
work = Path(tempfile.mkdtemp(prefix="p2p-sweep-"))
cases = make_pocket_bench(work / "bench", n=2, seed=0, types=(6, 1))  # PIE types: colour, shape (as object)
for case in cases:
    print(case.id, case.edit_type_name, ":", case.source_prompt, "->", case.target_prompt)""",
        md(
            "A method is an inversion plus `Editor.edit` keywords; every keyword (and every declared parameter of "
            "a rule) can be a grid axis. The sweep plans and checks all of it before the first row runs."
        ),
        """method = {"name": "p2p-ddim", "inversion": "ddim", "template": {"kind": "auto"}}
grid = {"cross": [0.2, 0.8], "self_attn": [0.2, 0.6]}
result = run_sweep(work / "bench", [method], grid, [0, 1], work / "sweep", steps=4, guidance="model",
                   metrics=model_free_scores, progress=False)
print(result)
rows = load_sweep(work / "sweep")
figures.type_bars(rows, "psnr_unedit_part")""",
        md(
            "## The SweepExplorer\n\n"
            "Choose the two columns the grid is laid out by (here the two windows), the score that colours each "
            "cell, and what the other columns do (fixed or averaged over seeds). Hover a cell for its numbers; "
            "click it to load its edit into the Studio below and run it again there."
        ),
        """from p2p_widgets.widgets import Studio
from p2p_widgets.widgets.sweep_explorer import SweepExplorer

studio = Studio(pipe=None)
explorer = SweepExplorer(work / "sweep", studio=studio, metric="psnr_unedit_part")
display(explorer, studio)""",
    ],
)


NOTEBOOKS["11_joint_attention"] = (
    3,
    [
        md(
            "# Joint attention: where text meets image in an MM-DiT\n\n"
            "SD3 and Flux have no cross-attention layer. Text tokens and image tokens are joined into one "
            "sequence and attend to each other in **one softmax**: an image token's row covers the text keys "
            "*and* the image keys. The cross-attention of a UNet becomes the image-query x text-key block of "
            "that softmax (its rows do not sum to 1: image keys take the rest), and the text tokens are "
            "rewritten in every block.\n\n"
            "Here on the *pocket flow model*: Flux's layout at pocket size (2 double-stream blocks, where text "
            "and image keep their own weights, then 4 single-stream blocks, where they share them), trained on "
            "the same scenes as the pocket UNet, beside it."
        ),
        """import torch
import p2p_widgets as p2p
from p2p_widgets import plots

torch.set_grad_enabled(False)
unet = p2p.Editor(p2p.load_pocket())              # the pocket UNet (DDIM)
flux = p2p.Editor(p2p.load_flow_pocket())         # the pocket flow model (a FluxPipeline, flow matching)
for site in flux.model.sites():
    print(site.block, site.kind, "queries", site.queries, "keys", site.keys)""",
        md(
            "## The same edit on a UNet and on a joint model\n\n"
            "Prompt-to-Prompt on joint attention keeps its meaning: inside the word windows the edit's image "
            "queries read the source's image -> text block through the token map M, inside the self window the "
            "source's image -> image block; the edit's text queries keep their own (README: P2P on joint attention)."
        ),
        """source = "a big red circle left of a small blue square on a gray background"
target = "a big green circle left of a small blue square on a gray background"
u = unet.edit(source, target, seed=4, steps=10, guidance=5.0, baseline=True)
f = flux.edit(source, target, seed=4, steps=10, guidance=4.0, baseline=True,
              store=p2p.AttentionStore(detail=True))
plots.images([u.images[0], u.baseline[1], u.images[1], f.images[0], f.baseline[1], f.images[1]],
             ["UNet: source", "no P2P", "P2P", "flow model: source", "no P2P", "P2P"], columns=3, height=200)""",
        md(
            "## Maps per block kind\n\n"
            "The store keeps each step's image -> text block at the one token grid (8 x 8 here), averaged "
            "over heads and blocks; with `detail=True` also per block kind. The double-stream blocks read the "
            "text with their own projections, the single-stream ones with the image's."
        ),
        """fp = f.prompts[0]
plots.token_maps(f.store, fp, words=["circle", "square"], place="double")""",
        """plots.token_maps(f.store, fp, words=["circle", "square"], place="single")""",
        md(
            "## Injecting keys and values instead of maps\n\n"
            "The editing methods written for these models swap attention *inputs*: `KVInjection` gives the "
            "edit the source's image keys and values in chosen blocks and steps (Stable Flow's vital layers, "
            "RF-Solver-Edit's values in the single blocks; `queries_and_keys()` is Shin et al.'s form). Here "
            "every block for the first half of the run: the layout follows the source, the colour the edit."
        ),
        """kv = flux.edit(source, target, rules=[p2p.KVInjection(end_step=5)], seed=4, steps=10, guidance=4.0)
plots.images([kv.images[0], kv.images[1]], ["source", "K/V injection, steps 0-4"], height=200)""",
    ],
)


def build(out: Path = OUT) -> list[Path]:
    """Write every notebook into ``out``; returns their paths."""
    out.mkdir(exist_ok=True)
    written = []
    for name, (min_figures, cells) in NOTEBOOKS.items():
        nb = new_notebook()
        nb.cells = [new_markdown_cell(str(c)) if isinstance(c, md) else new_code_cell(c) for c in cells]
        for i, cell in enumerate(nb.cells):
            cell.id = f"{name[:2]}-{i:02d}"  # stable ids: regenerating changes nothing unless a cell did
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "p2p_widgets": {"min_figures": min_figures},
        }
        nbformat.write(nb, out / f"{name}.ipynb")
        written.append(out / f"{name}.ipynb")
    return written


if __name__ == "__main__":
    for path in build():
        print("wrote", path)
