"""Prompts and mappers over several token segments (SD3's joint attention reads CLIP's 77 positions
then T5's, the same words in both).

:func:`joined` makes one :class:`~p2p_widgets.engine.prompts.Prompt` whose positions run over the
segments in order (each padded to its length): a word's positions are its tokens in every segment,
so windows, Reweight, LocalBlend and the store's token maps read all of them. :func:`align_joined`
aligns each segment with its own tokens and joins the mappers block-diagonally: M never feeds a
CLIP position from a T5 one.
"""

from __future__ import annotations

import dataclasses

import torch

from ..errors import P2PError
from .mapper import Mapper, _special_pairs, align
from .prompts import Prompt, Word


def joined(segments: list[Prompt | None], lengths: list[int], pad: str = "<pad>", names=()) -> Prompt:
    """One prompt over ``segments`` of ``lengths`` positions (None: a segment of padding only,
    e.g. SD3's zeros where the pipeline has no T5); the parts are kept in ``segments``, what each
    is in ``segment_names`` (``names``: SD3's "CLIP", "T5"; the widgets label their rows so)."""
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


def align_joined(source: Prompt, target: Prompt, kind: str = "auto", compat: str = "project") -> Mapper:
    """Each segment aligned with its own tokens (the first segment decides ``kind`` for all), joined
    block-diagonally; a padding-only segment maps to itself."""
    check_segments(source, target)
    length = source.max_length
    matrix, aligned = torch.zeros(length, length), torch.ones(length)
    bounds = [o for o, _ in source.segments] + [length]
    for n, ((offset, src), (_, tgt)) in enumerate(zip(source.segments, target.segments)):
        end = bounds[n + 1]
        if src is None:
            matrix[offset:end, offset:end] = torch.eye(end - offset)
            continue
        part = align(src, tgt, kind=kind, compat=compat)
        kind = part.kind
        size = src.max_length
        matrix[offset : offset + size, offset : offset + size] = part.matrix
        aligned[offset : offset + size] = part.aligned
    return dataclasses.replace(
        Mapper(source, target, matrix, aligned, kind), kind=kind if kind in ("replace", "refine") else "links"
    )


def check_segments(source: Prompt, target: Prompt) -> None:
    """A P2PError unless the two prompts run over the same segments (the same model's prompts)."""
    layout = [([o for o, _ in p.segments], p.max_length) for p in (source, target)]
    if layout[0] != layout[1]:
        raise P2PError(
            f"the source and target prompts run over different token segments ({layout[0]} vs {layout[1]}): "
            "make both with the same model's prompt()"
        )


def special_pairs(source: Prompt, target: Prompt):
    """The (source, target) positions a mapper made from links feeds by itself, segment by segment:
    each segment's BOS, EOS and padding as one prompt's (a padding-only segment to itself)."""
    check_segments(source, target)
    bounds = [o for o, _ in source.segments] + [source.max_length]
    for n, ((offset, src), (_, tgt)) in enumerate(zip(source.segments, target.segments)):
        if src is None or tgt is None:
            yield from ((p, p) for p in range(offset, bounds[n + 1]))
        else:
            yield from ((offset + i, offset + j) for i, j in _special_pairs(src, tgt))
