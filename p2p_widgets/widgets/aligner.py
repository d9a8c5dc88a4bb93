"""TokenAligner: build the mapper matrix M of Prompt-to-Prompt by hand.

>>> from p2p_widgets.widgets import TokenAligner
>>> aligner = TokenAligner("a photo of an orange cat", "a photo of a big tabby cat")
>>> aligner                          # drag source chips onto target chips; click a link to remove it
>>> aligner.mapper.matrix            # the engine's Mapper (77 x 77), built from the links
>>> aligner.auto_align("refine")     # refill the links from the engine's aligner

Python is the source of truth. The front end may only write ``source``, ``target``, ``links``,
``show_special`` and ``kind``; every such write is validated here (positions in range, finite
weights, right types) and an invalid one is rejected: ``error`` says why and the front end is put
back to the Python value.

Links are ``[source position, target position, weight]`` over the real tokens of the two prompts
(BOS is position 0, EOS the last); padding is never linked by hand. The mapper adds BOS -> BOS,
EOS -> EOS and padding -> padding wherever no link feeds those target positions
(:meth:`p2p_widgets.engine.mapper.Mapper.from_links`). Target tokens that no link feeds are new tokens:
they keep their own attention.

Given a model (``tokenizer=editor`` or its backend, as the Studio does) the aligner shows the
tokens that model attends to. An SD3 prompt runs over two token segments, CLIP's 77 positions then
T5's (:mod:`p2p_widgets.engine.segments`); each segment gets its own labelled pair of rows
(``segment`` in the token rows: "CLIP", "T5"), positions count over both, and a link stays within
one segment: the mapper aligns each segment with its own tokens, so a link from a CLIP token to a
T5 one is refused.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any

import traitlets

from ..engine.mapper import Mapper, align
from ..engine.prompts import Prompt
from ..errors import MessageError, P2PError, is_int
from ._base import P2PWidget, PromptCache, on_message

KINDS = ("auto", "replace", "refine")
#: largest |weight| accepted for a link (larger values are almost certainly typos)
MAX_WEIGHT = 10.0


def token_rows(prompt: Prompt) -> list[dict]:
    """The prompt's tokens as plain data for the front end.

    One dict per real token (BOS .. EOS; T5's prompts, Flux's text, have no BOS) of each token
    segment in turn (SD3: CLIP's, then T5's; padding left out): ``pos`` (token position over the
    whole prompt), ``text`` (the token decoded alone), ``word`` (word index, -1 for BOS/EOS),
    ``word_text``, ``special`` ("bos", "eos" or "") and ``segment`` (the segment's name, "" for a
    prompt of one segment)."""
    word_of = {p: w for w in prompt.words for p in w.positions}
    rows = []
    for offset, name, part in prompt.parts:
        for local, text in enumerate(part.tokens):
            pos = offset + local
            word = word_of.get(pos)
            special = "bos" if local == 0 and part.has_bos else "eos" if local == part.eos_position else ""
            rows.append(
                {
                    "pos": pos,
                    "text": text,
                    "word": word.index if word is not None and not special else -1,
                    "word_text": word.text if word is not None and not special else "",
                    "special": special,
                    "segment": name,
                }
            )
    return rows


def _token_range(prompt: Prompt) -> str:
    """The positions a link may use, in words: "0..7", or per segment "CLIP 0..7, T5 77..83"."""
    return ", ".join(f"{name} {o}..{o + p.n_tokens - 1}".strip() for o, name, p in prompt.parts)


def _same_links(a: list, b: list, tol: float = 1e-6) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and x[1] == y[1] and abs(x[2] - y[2]) <= tol for x, y in zip(a, b))


def _position_map(old: Prompt, new: Prompt) -> dict[int, int]:
    """Old token position -> new position for tokens that survive an edit of the prompt text
    (segment by segment: a token stays in its segment)."""
    mapping = {}
    new_parts = {name: (offset, part) for offset, name, part in new.parts}
    for a_off, name, a in old.parts:
        if name not in new_parts:
            continue
        b_off, b = new_parts[name]
        matcher = difflib.SequenceMatcher(a=a.ids, b=b.ids, autojunk=False)
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            if op == "equal":
                mapping.update(zip(range(a_off + a0, a_off + a1), range(b_off + b0, b_off + b1)))
        if a.has_bos and b.has_bos:
            mapping[a_off] = b_off  # BOS stays BOS, EOS stays EOS whatever the text between them
        mapping[a_off + a.eos_position] = b_off + b.eos_position
    return mapping


class TokenAligner(P2PWidget):
    """Source tokens on one row, target tokens on the other; links between them build M.

    Parameters
    ----------
    source, target:
        The prompts (text). Editable later from Python or in the widget.
    tokenizer:
        The CLIP tokenizer (default: :func:`p2p_widgets.engine.tokenizer.load_tokenizer`), another
        tokenizer, or the model whose tokens to show: an Editor or its backend (SD3: both segments).
    kind:
        How :meth:`auto_align` fills the links: ``"auto"``, ``"replace"`` or ``"refine"``. The
        links start as ``auto_align(kind)`` unless ``links`` is given.
    links, show_special:
        Optional initial values of the traits of the same name.
    """

    _bundle = "aligner"
    _frontend_keys = frozenset({"source", "target", "links", "show_special", "kind"})  # what the page may write
    _first_keys = ("source", "target")  # new prompt text first: links in the same update are checked against it

    source = traitlets.Unicode("", help="Source prompt.").tag(sync=True)
    target = traitlets.Unicode("", help="Target (edited) prompt.").tag(sync=True)
    source_tokens = traitlets.List(traitlets.Dict(), help="Source tokens (computed in Python).").tag(sync=True)
    target_tokens = traitlets.List(traitlets.Dict(), help="Target tokens (computed in Python).").tag(sync=True)
    # Any, not List: the validator below checks the type itself and says what is wrong
    links = traitlets.Any([], help="[[source pos, target pos, weight], ...] sorted, no duplicates.").tag(sync=True)
    show_special = traitlets.Bool(False, help="Show BOS/EOS chips.").tag(sync=True)
    kind = traitlets.Enum(KINDS, default_value="auto", help="Aligner used by auto_align().").tag(sync=True)

    def __init__(self, source: str = "", target: str = "", tokenizer=None, kind: str = "auto", **kwargs: Any):
        self._prompt = PromptCache(tokenizer)
        self._auto_links: list | None = None
        self._ready = False
        # (name, text) -> None or TraitError: a further check of typed prompts (the Studio's panel's)
        self.prompt_check: Callable[[str, str], None] | None = None
        links = kwargs.pop("links", None)
        super().__init__(source=source, target=target, kind=kind, **kwargs)
        self._retokenize()
        if links is None:
            self.auto_align(self.kind)
        else:
            self.links = links
        self._ready = True

    # -- prompts and tokens --------------------------------------------------------------------

    @property
    def source_prompt(self) -> Prompt:
        return self._prompt(self.source)

    @property
    def target_prompt(self) -> Prompt:
        return self._prompt(self.target)

    @traitlets.validate("source", "target")
    def _check_text(self, proposal):
        text = self._prompt.check_trait(proposal)
        if self.prompt_check is not None:
            self.prompt_check(proposal["trait"].name, text)
        return text

    def _retokenize(self) -> None:
        self.source_tokens = token_rows(self.source_prompt)
        self.target_tokens = token_rows(self.target_prompt)

    @traitlets.observe("source", "target")
    def _on_text(self, change):
        if not self._ready:
            return
        side = change["name"]
        old, new = self._prompt(change["old"]), self._prompt(change["new"])
        untouched = self._auto_links is not None and _same_links(self.links, self._auto_links)
        with self.hold_sync():
            self._retokenize()
            if untouched:  # the user never edited the links: align the new prompts afresh
                self.auto_align(self.kind)
            else:  # keep the links whose two tokens are still there
                self.links = self._remap(self.links, side, _position_map(old, new))

    @staticmethod
    def _remap(links, side, mapping) -> list:
        kept = []
        for i, j, w in links:
            if side == "source":
                i = mapping.get(i)
            else:
                j = mapping.get(j)
            if i is not None and j is not None:
                kept.append([i, j, w])
        return kept

    # -- links -----------------------------------------------------------------------------------

    @traitlets.validate("links")
    def _check_links(self, proposal):
        return self._validated_links(proposal["value"])

    def _validated_links(self, value) -> list:
        if not isinstance(value, (list, tuple)):
            raise traitlets.TraitError(f"links must be a list of [source, target, weight], got {type(value).__name__}")
        src, tgt = self.source_prompt, self.target_prompt
        out, seen = [], set()
        for k, link in enumerate(value):
            if not isinstance(link, (list, tuple)) or len(link) != 3:
                raise traitlets.TraitError(f"link {k} must be [source, target, weight], got {link!r}")
            i, j, w = link
            parts = []
            for name, v, prompt in (("source", i, src), ("target", j, tgt)):
                if not is_int(v):
                    raise traitlets.TraitError(f"link {k}: {name} position must be an integer, got {v!r}")
                part = prompt.part_of(int(v))
                if part is None:
                    raise traitlets.TraitError(
                        f"link {k}: {name} position {v} is out of range: {prompt.text!r} has tokens "
                        f"{_token_range(prompt)}"
                    )
                parts.append(part)
            if parts[0][0] != parts[1][0]:
                a, b = (name or f"segment-at-{offset}" for offset, name, _ in parts)
                raise traitlets.TraitError(
                    f"link {k}: source {i} is a {a} token but target {j} a {b} one: a link stays within one "
                    f"segment (the mapper aligns each segment's tokens with its own)"
                )
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                raise traitlets.TraitError(f"link {k}: weight must be a number, got {w!r}")
            w = float(w)
            if not math.isfinite(w):
                raise traitlets.TraitError(f"link {k}: weight {w!r} is not a finite number")
            if abs(w) > MAX_WEIGHT:
                raise traitlets.TraitError(f"link {k}: weight {w} is outside [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}]")
            if (i, j) in seen:
                raise traitlets.TraitError(f"link {k}: source {i} -> target {j} is linked twice")
            seen.add((i, j))
            out.append([i, j, w])
        out.sort(key=lambda link: (link[0], link[1]))
        return out

    def link(self, source_pos: int, target_pos: int, weight: float | None = None) -> None:
        """Link source token ``source_pos`` to target token ``target_pos``.

        Without ``weight`` the source's weight is split evenly over its targets (as the widget
        does when its current weights are an even split)."""
        links = [list(x) for x in self.links if not (x[0] == source_pos and x[1] == target_pos)]
        if weight is None:
            mine = [x for x in self.links if x[0] == source_pos]
            even = all(abs(x[2] - 1 / len(mine)) < 1e-6 for x in mine) if mine else True
            k = len([x for x in links if x[0] == source_pos]) + 1
            if even:
                links = [[a, b, 1 / k] if a == source_pos else [a, b, c] for a, b, c in links]
            weight = 1 / k
        self.links = [*links, [source_pos, target_pos, weight]]

    def unlink(self, source_pos: int, target_pos: int) -> None:
        """Remove the link source_pos -> target_pos (KeyError if there is none)."""
        links = [x for x in self.links if not (x[0] == source_pos and x[1] == target_pos)]
        if len(links) == len(self.links):
            raise KeyError(f"no link from source {source_pos} to target {target_pos}")
        self.links = links

    def auto_align(self, kind: str | None = None) -> None:
        """Replace the links with the engine's alignment (``"auto"``, ``"replace"`` or ``"refine"``)."""
        kind = self.kind if kind is None else kind
        if kind not in KINDS:
            raise P2PError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        src, tgt = self.source_prompt, self.target_prompt
        mapper = align(src, tgt, kind=kind)  # Prompts already: segment by segment where they have several
        real_src, real_tgt = set(src.token_positions), set(tgt.token_positions)
        links = [[i, j, w] for i, j, w in mapper.links if i in real_src and j in real_tgt]
        self.links = links
        self._auto_links = [list(x) for x in self.links]

    @property
    def mapper(self) -> Mapper:
        """The engine's :class:`~p2p_widgets.engine.mapper.Mapper` built from the links (a new object
        on every access; BOS, EOS and padding are fed automatically where no link feeds them)."""
        return Mapper.from_links(self.source_prompt, self.target_prompt, self.links, include_special=True)

    # -- front end -------------------------------------------------------------------------------

    @on_message("auto_align")
    def _on_auto_align(self, content: dict, buffers: list) -> None:
        kind = content.get("kind", self.kind)
        if kind not in KINDS:
            raise MessageError(f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        self.clear_error()
        self.auto_align(kind)

    def __repr__(self) -> str:
        return f"TokenAligner(source={self.source!r}, target={self.target!r}, links={len(self.links)})"
