"""Mappers: which source token feeds which target token (the matrix M of Prompt-to-Prompt).

``matrix[i, j]`` is the weight with which source token position i feeds target position j, so
the edit's injected cross-attention is ``A_src @ matrix``. ``aligned[j]`` is 1 where target
token j takes the source's attention and 0 for new tokens, which keep their own attention.

Three ways to get one:
- ``align(source, target, kind="replace")``: word-level diff; each replaced span of source words
  feeds the target span (equal token counts pair one to one, otherwise each source token's mass is
  spread evenly over the target tokens); tokens after a span keep their offset, EOS feeds EOS and
  padding feeds padding. (The reference maps tokens after a length-changing span to the diagonal,
  misaligning them; see tests/test_mapper.py.)
- ``align(source, target, kind="refine")``: global alignment of the token ids (Needleman-Wunsch,
  gap 0, match 1, mismatch -1, ties: left, up, diagonal, as the reference); new tokens unaligned.
- ``Mapper.from_links(source, target, links)``: explicit (source position, target position,
  weight) triples, as the TokenAligner widget builds them.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

import torch

from ..errors import P2PError, is_int, is_number
from .prompts import Prompt, as_prompt

KINDS = ("auto", "replace", "refine", "links")
COMPATS = ("project", "reference")  # "reference": the authors' choices where this project corrects them


@dataclass(frozen=True, eq=False)
class Mapper:
    source: Prompt
    target: Prompt
    matrix: torch.Tensor  # (L, L) float32, L = 77
    aligned: torch.Tensor  # (L,) float32
    kind: str

    @property
    def links(self) -> list[tuple[int, int, float]]:
        """Non-zero entries of M as (source position, target position, weight)."""
        idx = torch.nonzero(self.matrix, as_tuple=False).tolist()
        return [(i, j, float(self.matrix[i, j])) for i, j in idx]

    @classmethod
    def from_links(cls, source, target, links, tokenizer=None, include_special: bool = True) -> Mapper:
        """Build M from (source position, target position, weight) links.

        With ``include_special`` BOS feeds BOS, EOS feeds EOS and padding feeds padding unless a
        link already feeds that target position: the widget hides those tokens.
        """
        source, target = _prompts(source, target, tokenizer)
        length = source.max_length
        matrix = torch.zeros(length, length)
        for link in links:
            i, j, w = _check_link(link, length)
            _check_same_segment(source, i, j)
            matrix[i, j] += w
        fed = matrix.abs().sum(0) > 0
        if include_special:
            for i, j in special_pairs(source, target):
                if not fed[j]:
                    matrix[i, j] = 1.0
        return cls(source, target, matrix, _fed(matrix), "links")

    @property
    def aligned_by_links(self) -> bool:
        """Whether the aligned target positions are the ones some link feeds (what a mapper made
        from links has; the authors' word swap leaves its last columns unfed but aligned)."""
        return torch.equal(self.aligned, _fed(self.matrix))

    def to_dict(self) -> dict:
        data = {"source": self.source.text, "target": self.target.text, "kind": self.kind, "links": self.links}
        # the loader takes the columns some link feeds as the aligned ones; where that is not so,
        # the unaligned ones are written
        if not self.aligned_by_links:
            data["unaligned"] = torch.nonzero(self.aligned == 0).flatten().tolist()
        return data

    @classmethod
    def from_dict(cls, data, source: Prompt, target: Prompt) -> Mapper:
        """The mapper of :meth:`to_dict`'s data for ``source`` -> ``target`` (every link written out,
        special tokens included), keeping its kind so a re-export is identical."""
        if not isinstance(data, dict) or not isinstance(data.get("links"), list):
            raise P2PError("a mapper is an object with 'links': [[source position, target position, weight], ...]")
        if data.get("source", source.text) != source.text or data.get("target", target.text) != target.text:
            raise P2PError(
                f"the mapper is for {data.get('source')!r} -> {data.get('target')!r}, "
                f"not {source.text!r} -> {target.text!r}"
            )
        for link in data["links"]:
            if not isinstance(link, (list, tuple)) or len(link) != 3:
                raise P2PError(f"a link is [source position, target position, weight], got {link!r}")
        mapper = cls.from_links(source, target, [tuple(link) for link in data["links"]], include_special=False)
        kind = data.get("kind", "links")
        if kind not in ("replace", "refine", "links"):
            raise P2PError(f"mapper kind must be 'replace', 'refine' or 'links', got {kind!r}")
        aligned = mapper.aligned  # without 'unaligned' (files written before it existed): the fed columns
        if "unaligned" in data:
            aligned = torch.ones_like(aligned)
            aligned[_check_positions("unaligned", data["unaligned"], len(aligned))] = 0.0
        return dataclasses.replace(mapper, kind=kind, aligned=aligned)


def _fed(matrix: torch.Tensor) -> torch.Tensor:
    """1 for the target columns some source token feeds."""
    return (matrix.abs().sum(0) > 0).float()


def _check_positions(name, positions, length) -> list[int]:
    if not isinstance(positions, list) or not all(is_int(p) and 0 <= p < length for p in positions):
        raise P2PError(f"{name!r} must be a list of target positions in [0, {length}), got {positions!r}")
    return [int(p) for p in positions]


def _check_link(link, length):
    try:
        i, j, w = link
    except (TypeError, ValueError):
        raise P2PError(f"a link is (source position, target position, weight), got {link!r}") from None
    for name, v in (("source position", i), ("target position", j)):
        if not is_int(v):  # numpy integers too (widgets, sweep grids)
            raise P2PError(f"{name} {v!r} is not an integer in [0, {length})")
        if not 0 <= v < length:
            raise P2PError(
                f"{name} {v} is outside this model's {length} text positions (0-{length - 1}): "
                "were the links made for a model that reads more text tokens (e.g. an SD edit on a Flux model)?"
            )
    if not is_number(w):
        raise P2PError(f"link weight {w!r} is not a finite number")
    return int(i), int(j), float(w)


def _check_same_segment(source: Prompt, i: int, j: int) -> None:
    """A link stays in one token segment (SD3: CLIP's positions feed CLIP's, T5's T5's): M is
    block-diagonal over the segments the model reads as separate encoders."""
    if not source.segments:
        return
    starts = [o for o, _ in source.segments]
    seg_i, seg_j = (sum(o <= p for o in starts) - 1 for p in (i, j))
    if seg_i != seg_j:
        names = source.segment_names or tuple(f"segment {n + 1}" for n in range(len(starts)))
        raise P2PError(
            f"link {i} -> {j} crosses token segments ({names[seg_i]} -> {names[seg_j]}): "
            "a link joins positions of the same segment"
        )


def _prompts(source, target, tokenizer):
    if tokenizer is None and not (isinstance(source, Prompt) and isinstance(target, Prompt)):
        from .tokenizer import load_tokenizer

        tokenizer = load_tokenizer()
    return as_prompt(source, tokenizer), as_prompt(target, tokenizer)


def special_pairs(source: Prompt, target: Prompt):
    """The pairs a mapper made from links feeds by itself: :func:`_special_pairs`, in every segment
    of a prompt over several (SD3's CLIP and T5: :func:`_segment_special_pairs`)."""
    if source.segments or target.segments:
        return _segment_special_pairs(source, target)
    return _special_pairs(source, target)


def _special_pairs(source: Prompt, target: Prompt):
    """BOS -> BOS (where the prompts have one: T5's have not), EOS -> EOS, and padding -> padding
    with the length offset kept."""
    if source.has_bos and target.has_bos:
        yield 0, 0
    yield from _tail_pairs(source.eos_position, target.eos_position, source.max_length)


def _tail_pairs(i: int, j: int, length: int):
    """Pairs (i + k, j + k) from a matching point to the end; past the source's end, its last pad."""
    while j < length:
        yield min(i, length - 1), j
        i, j = i + 1, j + 1


def align(source, target, tokenizer=None, kind: str = "auto", compat: str = "project") -> Mapper:
    """The mapper from ``source`` to ``target`` (strings or Prompts); see the module docstring.
    ``compat="reference"``: tokens after the last replaced word, and padding after a refined
    target's EOS, map by absolute position as the authors' code does (not shifted by a length change)."""
    if kind not in KINDS[:3]:
        raise P2PError(f"kind must be 'auto', 'replace' or 'refine', got {kind!r}")
    check_compat(compat)
    source, target = _prompts(source, target, tokenizer)
    if source.segments or target.segments:  # SD3: each segment aligned with its own tokens
        return align_joined(source, target, kind, compat)
    ops = _word_opcodes(source, target)
    if kind == "auto":
        kind = "replace" if all(op in ("equal", "replace") for op, *_ in ops) else "refine"
    if kind == "replace":
        if compat == "reference":
            return _reference_replace_mapper(source, target)
        return _replace_mapper(source, target, ops)
    return _refine_mapper(source, target, compat)


def check_compat(compat) -> str:
    if compat not in COMPATS:
        raise P2PError(f"compat must be 'project' or 'reference' (the authors' choices), got {compat!r}")
    return compat


def _word_opcodes(source: Prompt, target: Prompt):
    a = [w.text.lower() for w in source.words]
    b = [w.text.lower() for w in target.words]
    return difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()


def _span(prompt: Prompt, w0: int, w1: int) -> list[int]:
    return [p for w in prompt.words[w0:w1] for p in w.positions]


def _replace_mapper(source: Prompt, target: Prompt, ops) -> Mapper:
    length = source.max_length
    matrix = torch.zeros(length, length)
    aligned = torch.ones(length)
    matrix[0, 0] = 1.0  # BOS
    for op, a0, a1, b0, b1 in ops:
        src, tgt = _span(source, a0, a1), _span(target, b0, b1)
        if op == "equal" or (op == "replace" and len(src) == len(tgt)):
            for i, j in zip(src, tgt):  # one to one
                matrix[i, j] = 1.0
        elif op == "replace":  # spread each source token's mass evenly over the target tokens
            for i in src:
                for j in tgt:
                    matrix[i, j] = 1.0 / len(tgt)
        elif op == "insert":  # new words: no source, they keep their own attention
            aligned[tgt] = 0.0
        # "delete": the source words feed nothing
    for i, j in _tail_pairs(source.eos_position, target.eos_position, length):
        matrix[i, j] = 1.0
    return Mapper(source, target, matrix, aligned, "replace")


def needleman_wunsch(x, y, gap=0, match=1, mismatch=-1) -> list[int]:
    """For each element of ``y``, the index of the ``x`` element aligned with it, or -1 (new)."""
    n, m = len(x), len(y)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    move = [[""] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        score[i][0], move[i][0] = i * gap, "up"
    for j in range(1, m + 1):
        score[0][j], move[0][j] = j * gap, "left"
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = score[i - 1][j - 1] + (match if x[i - 1] == y[j - 1] else mismatch)
            left, up = score[i][j - 1] + gap, score[i - 1][j] + gap
            best = max(left, up, diag)
            score[i][j] = best
            move[i][j] = "left" if left == best else "up" if up == best else "diag"  # reference tie order
    out, i, j = [], n, m
    while i > 0 or j > 0:
        step = move[i][j]
        if step == "diag":
            out.append(i - 1)
            i, j = i - 1, j - 1
        elif step == "left":
            out.append(-1)
            j -= 1
        else:
            i -= 1
    return out[::-1]


def _reference_replace_mapper(source: Prompt, target: Prompt) -> Mapper:
    """The authors' word-swap mapper: one walk over both prompts; each replaced word feeds its
    target word (one to one, or spread evenly when the token counts differ), tokens between them
    pair in step, and after the last replaced word target position j reads source position j."""
    if len(source.words) != len(target.words):
        raise P2PError(
            f"a word swap needs prompts with the same number of words ({len(source.words)} vs "
            f"{len(target.words)}); use kind='refine'"
        )
    length = source.max_length
    matrix = torch.zeros(length, length)
    spans = [(a.positions, b.positions) for a, b in zip(source.words, target.words) if a.text != b.text]
    i = j = k = 0
    while i < length and j < length:
        if k < len(spans) and spans[k][0][0] == i:
            src, tgt = spans[k]
            if len(src) == len(tgt):
                matrix[src, tgt] = 1.0
            else:
                matrix[torch.tensor(src)[:, None], torch.tensor(tgt)[None, :]] = 1.0 / len(tgt)
            i, j, k = i + len(src), j + len(tgt), k + 1
        else:
            matrix[i if k < len(spans) else j, j] = 1.0
            i, j = i + 1, j + 1
    return Mapper(source, target, matrix, torch.ones(length), "replace")


def _refine_mapper(source: Prompt, target: Prompt, compat: str = "project") -> Mapper:
    length = source.max_length
    matrix = torch.zeros(length, length)
    aligned = torch.ones(length)
    for j, i in enumerate(needleman_wunsch(source.ids, target.ids)):
        if i < 0:
            aligned[j] = 0.0
        else:
            matrix[i, j] = 1.0
    # padding after EOS keeps the length offset (EOS is aligned by the global alignment); the
    # authors' code maps it by absolute position
    start = target.eos_position + 1 if compat == "reference" else source.eos_position + 1
    for i, j in _tail_pairs(start, target.eos_position + 1, length):
        matrix[i, j] = 1.0
    return Mapper(source, target, matrix, aligned, "refine")


# -- prompts over several token segments (engine/segments.py joins them) ------------------------------
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


def _segment_special_pairs(source: Prompt, target: Prompt):
    """The (source, target) positions a mapper made from links feeds by itself, segment by segment:
    each segment's BOS, EOS and padding as one prompt's (a padding-only segment to itself)."""
    check_segments(source, target)
    bounds = [o for o, _ in source.segments] + [source.max_length]
    for n, ((offset, src), (_, tgt)) in enumerate(zip(source.segments, target.segments)):
        if src is None or tgt is None:
            yield from ((p, p) for p in range(offset, bounds[n + 1]))
        else:
            yield from ((offset + i, offset + j) for i, j in _special_pairs(src, tgt))
