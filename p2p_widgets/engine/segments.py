"""Prompts over several token segments (SD3's joint attention reads CLIP's 77 positions
then T5's, the same words in both).

:func:`joined` makes one :class:`~p2p_widgets.engine.prompts.Prompt` whose positions run over the
segments in order (each padded to its length): a word's positions are its tokens in every segment,
so windows, Reweight, LocalBlend and the store's token maps read all of them.
:func:`~p2p_widgets.engine.mapper.align_joined` aligns each segment with its own tokens and joins
the mappers block-diagonally: M never feeds a CLIP position from a T5 one.
"""

from __future__ import annotations

from ..errors import P2PError
from .prompts import Prompt, Word


def joined(segments: list[Prompt | None], lengths: list[int], pad: str = "<pad>", names=()) -> Prompt:
    """One prompt over ``segments`` of ``lengths`` positions (None: a segment of padding only,
    e.g. SD3's zeros where the pipeline has no T5); the parts are kept in ``segments``, what each
    is in ``segment_names`` (``names``: SD3's "CLIP", "T5"; the widgets label their rows so)."""
    if names and len(names) != len(segments):
        raise P2PError(f"{len(names)} segment names for {len(segments)} segments: name each or none")
    ids, tokens, offsets, offset = [], [], [], 0
    for part, length in zip(segments, lengths):
        offsets.append(offset)
        seg_ids = list(part.ids) if part is not None else []
        seg_tokens = list(part.tokens) if part is not None else []
        ids += seg_ids + [0] * (length - len(seg_ids))
        tokens += seg_tokens + [pad] * (length - len(seg_tokens))
        offset += length
    first = next(p for p in segments if p is not None)
    words = []
    for k, word in enumerate(first.words):
        positions = tuple(
            o + p for part, o in zip(segments, offsets) if part is not None for p in part.words[k].positions
        )
        words.append(Word(word.text, k, positions))
    parts = tuple((o, p) for o, p in zip(offsets, segments))
    return Prompt(first.text, tuple(ids), tuple(tokens), tuple(words), offset, parts, tuple(names))
