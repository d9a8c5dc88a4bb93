"""Errors with messages that name the problem; all subclass ValueError so callers can catch broadly."""


class P2PError(ValueError):
    """Base class for bad input to p2p_widgets."""


class WordNotFound(P2PError):
    def __init__(self, word, prompt_text: str, words):
        listed = ", ".join(repr(w) for w in words)
        super().__init__(f"word {word!r} is not in the prompt {prompt_text!r}; its words are: {listed}")
        self.word = word


class PromptTooLong(P2PError):
    def __init__(self, prompt_text: str, n_tokens: int, limit: int):
        super().__init__(
            f"prompt has {n_tokens} tokens with BOS/EOS but the text encoder takes {limit}: {prompt_text[:80]!r}..."
        )
