"""Stable Diffusion 3 / 3.5: MM-DiT joint attention over [image; text] tokens.

Text as diffusers' ``StableDiffusion3Pipeline`` encodes it: CLIP-L and CLIP-G penultimate states
joined on the feature axis (77 positions), then T5 on the sequence axis (``max_sequence_length``,
256 by default; zeros when the pipeline has no T5); pooled CLIP-L + CLIP-G. Classifier-free
guidance in one [uncond; cond] batch with the empty negative prompt; defaults 28 steps, CFG 7.
"""

from __future__ import annotations

import copy
import functools

from ..defaults import SD3_DEFAULTS, SamplingDefaults
from ..prompts import Prompt
from ..segments import joined
from .flow import FlowBackend


class SD3Backend(FlowBackend):
    family = "sd3"

    def family_defaults(self) -> SamplingDefaults:
        return SD3_DEFAULTS

    default_max_shift = 1.16  # StableDiffusion3Pipeline's fallback

    @property
    def patch(self) -> int:
        return self.transformer.config.patch_size

    @property
    def text_length(self) -> int:
        """Text keys of the joint attention: CLIP's positions plus T5's."""
        return int(self.tokenizer.model_max_length) + self.t5_length

    @property
    def t5_length(self) -> int:
        return self.defaults.text_length or 256

    def prompt(self, text) -> Prompt:
        """The prompt over the joint attention's text: CLIP's 77 positions, then T5's (padding only
        where the pipeline has no T5: it attends to zeros there)."""
        if isinstance(text, Prompt):
            return text
        clip = Prompt.from_text(text, self.tokenizer)
        t5 = None
        if self.pipe.tokenizer_3 is not None:
            t5 = Prompt.from_text(text, self.t5_tokenizer)
        return joined([clip, t5], [int(self.tokenizer.model_max_length), self.t5_length], names=("CLIP", "T5"))

    @functools.cached_property
    def t5_tokenizer(self):
        tokenizer = copy.deepcopy(self.pipe.tokenizer_3)
        tokenizer.model_max_length = self.t5_length
        return tokenizer

    def _encode_prompt(self, texts):
        hidden, _, pooled, _ = self.pipe.encode_prompt(
            texts,
            None,
            None,
            device=self.device,
            do_classifier_free_guidance=False,
            max_sequence_length=self.t5_length,
        )
        return hidden, pooled

    def _velocity(self, latents, t, cond, guidance):
        timestep = t.expand(latents.shape[0])
        return self.transformer(
            hidden_states=latents,
            timestep=timestep,
            encoder_hidden_states=cond.hidden,
            pooled_projections=cond.pooled,
            return_dict=False,
        )[0]
