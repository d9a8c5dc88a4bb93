"""Prompts and tokens: a prompt's token ids, its words, and which token positions each word covers.

Words are the whitespace-separated pieces of the prompt (as in the reference), so "cat." is one
word covering the tokens "cat" and ".". A word can be looked up by its text (every occurrence,
exact first, then ignoring case and surrounding punctuation) or by its word position.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from ..errors import P2PError, PromptTooLong, WordNotFound
from .tokenizer import TOKENIZER_LOCK, private_copy

BOS_POSITION = 0


@dataclass(frozen=True)
class Word:
    text: str
    index: int  # position among the prompt's words
    positions: tuple[int, ...]  # token positions (BOS is position 0)


@dataclass(frozen=True)
class Prompt:
    text: str
    ids: tuple[int, ...]  # token ids with BOS and EOS, not padded
    tokens: tuple[str, ...]  # each id decoded alone (BOS/EOS included)
    words: tuple[Word, ...]
    max_length: int = 77
    # a prompt over several token segments (engine/segments.py): (offset, Prompt or None) each
    segments: tuple = ()
    segment_names: tuple = ()  # what each segment is, for display (SD3: "CLIP", "T5")

    @classmethod
    def from_text(cls, text: str, tokenizer) -> Prompt:
        if not isinstance(text, str):
            raise P2PError(f"a prompt must be a string, got {type(text).__name__}")
        _check_text(text)
        max_length = int(tokenizer.model_max_length)
        with TOKENIZER_LOCK:
            tokenizer = private_copy(tokenizer)  # your code may call the pipeline's own at the same time
            ids = tuple(tokenizer(text, truncation=False).input_ids)
            if len(ids) > max_length:
                raise PromptTooLong(text, len(ids), max_length)
            pieces = [len(tokenizer(piece, add_special_tokens=False).input_ids) for piece in text.split()]
            tokens = tuple(tokenizer.decode([i]) for i in ids)
        # CLIP starts with BOS (words from position 1); T5 has none (words from 0); both end with EOS
        lead = 1 if tokenizer.bos_token_id is not None and ids[:1] == (tokenizer.bos_token_id,) else 0
        words, cursor = [], lead
        for k, (piece, n) in enumerate(zip(text.split(), pieces)):
            words.append(Word(piece, k, tuple(range(cursor, cursor + n))))
            cursor += n
        if cursor != len(ids) - 1:  # tokenising word by word must reproduce the whole prompt
            raise P2PError(f"could not map the words of {text!r} onto its tokens")
        return cls(text, ids, tokens, tuple(words), max_length)

    @property
    def n_tokens(self) -> int:
        """Tokens including BOS and EOS (the EOS position is ``n_tokens - 1``)."""
        return len(self.ids)

    @property
    def has_bos(self) -> bool:
        """Whether position 0 is a BOS token (CLIP's prompts start with one; T5's, Flux's text, do not)."""
        if self.words:
            return self.words[0].positions[0] > 0
        return len(self.ids) > 1  # no words: BOS + EOS, or EOS alone

    @property
    def eos_position(self) -> int:
        return len(self.ids) - 1

    @property
    def parts(self) -> tuple:
        """``(offset, name, Prompt)`` of each run of tokens: the segments that hold tokens (SD3:
        CLIP's at 0, T5's after CLIP's 77 positions; not a padding-only one), or the prompt itself
        at 0, named ''. A position belongs to one part; mappers align each part with its own."""
        if not self.segments:
            return ((0, "", self),)
        names = self.segment_names or tuple(f"segment {n + 1}" for n in range(len(self.segments)))
        return tuple((o, name, p) for (o, p), name in zip(self.segments, names) if p is not None)

    @property
    def token_positions(self) -> tuple[int, ...]:
        """The positions holding a token of the text (BOS and EOS included), not padding."""
        return tuple(o + k for o, _, part in self.parts for k in range(part.n_tokens))

    def part_of(self, position: int):
        """The ``(offset, name, Prompt)`` of :attr:`parts` holding token ``position``, or None (padding)."""
        for offset, name, part in self.parts:
            if offset <= position < offset + part.n_tokens:
                return offset, name, part
        return None

    def find(self, word: str | int) -> list[Word]:
        """Every occurrence of ``word`` (text) or the word at position ``word`` (int)."""
        if isinstance(word, bool) or not isinstance(word, (str, int)):
            raise P2PError(f"a word is looked up by text or by position, got {word!r}")
        if isinstance(word, int):
            if not 0 <= word < len(self.words):
                raise P2PError(f"word position {word} is out of range: {self.text!r} has {len(self.words)} words")
            return [self.words[word]]
        found = [w for w in self.words if w.text == word]
        if not found:
            key = _normalise(word)
            found = [w for w in self.words if key and _normalise(w.text) == key]
        if not found:
            raise WordNotFound(word, self.text, [w.text for w in self.words])
        return found

    def has(self, word: str | int) -> bool:
        """Whether :meth:`find` finds ``word``."""
        try:
            self.find(word)
        except P2PError:
            return False
        return True

    def positions(self, word: str | int) -> list[int]:
        """Token positions of every occurrence of ``word``."""
        return [p for w in self.find(word) for p in w.positions]


def _normalise(text: str) -> str:
    return text.strip(string.punctuation).lower()


def prompt_maker(source=None):
    """``text -> Prompt`` as a model reads its text: ``source`` is an Editor or a model backend (its
    ``prompt``: SD3's runs over CLIP's then T5's token segments), a tokenizer (one segment,
    :meth:`Prompt.from_text`), or None (the bundled CLIP tokenizer). The widgets make their prompts
    with it, so that they show and align the tokens the model attends to."""
    if source is None:
        from .tokenizer import load_tokenizer

        source = load_tokenizer()
    prompt = getattr(source, "prompt", None)
    if callable(prompt):
        return prompt
    return lambda text: Prompt.from_text(text, source)


def as_prompt(prompt, tokenizer) -> Prompt:
    return prompt if isinstance(prompt, Prompt) else Prompt.from_text(prompt, tokenizer)


def _check_text(text: str) -> None:
    """Refuse text the tokenizer cannot take (a lone UTF-16 surrogate, e.g. from a broken paste)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise P2PError(
            f"the prompt holds a character that is not text (U+{ord(text[exc.start]):04X} at "
            f"position {exc.start}): retype or delete it"
        ) from None
