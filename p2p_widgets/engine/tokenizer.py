"""The CLIP BPE tokenizer Stable Diffusion uses, loaded offline from files inside the package."""

import copy
import threading
import weakref
from functools import lru_cache
from pathlib import Path

CLIP_DIR = Path(__file__).resolve().parent.parent / "_clip"
MAX_LENGTH = 77  # Stable Diffusion's text positions (BOS + 75 tokens + EOS)

# Calls into a tokenizers-backed tokenizer are not safe across threads: one call's padding and
# truncation settings leak into another's (seen: word-by-word ids that did not add up to the
# prompt's while another thread padded). Every call of the engine and widgets holds this lock
# (the training script tokenizes in one thread).
TOKENIZER_LOCK = threading.RLock()
# user code may call ``pipe.tokenizer`` from any thread without the lock: the package encodes
# prompts with its own copy of each tokenizer (id(tokenizer) -> (weak reference, copy))
_PRIVATE: dict[int, tuple] = {}


def private_copy(tokenizer):
    """The package's own copy of ``tokenizer``, made once per tokenizer object: calls on it never
    race a call of your code on the original (a tokenizers-backed tokenizer's padding and truncation
    settings are per object, and calls from two threads leak them into each other)."""
    with TOKENIZER_LOCK:
        entry = _PRIVATE.get(id(tokenizer))
        if entry is not None and entry[0]() is tokenizer:
            return entry[1]
        key = id(tokenizer)
        try:
            ref = weakref.ref(tokenizer, lambda _, key=key: _PRIVATE.pop(key, None))
        except TypeError:  # an object without weak references: kept alive with its copy

            def ref():
                return tokenizer

        # each call sets padding and truncation again, so a setting the original held while this
        # copy was made (a call of your code in flight) does not stay in the copy
        own = _copy(tokenizer)
        _PRIVATE[key] = (ref, own)
        return own


PROBE = "a photo of a red cat, 2 dogs"


def _copy(tokenizer):
    """A deep copy that tokenizes and decodes as ``tokenizer`` does, or ``tokenizer`` itself when no
    such copy can be made (it is then used under the lock only)."""
    try:
        own = copy.deepcopy(tokenizer)
    except Exception:  # a tokenizer holding something that does not copy
        return tokenizer
    # transformers' CLIPTokenizer wraps its backend's decode in Python (the "</w>" suffix becomes a
    # space); a copy of the backend loses the wrapper, so the copy wraps its own again
    wrap = getattr(own, "_wrap_decode_method_backend_tokenizer", None)
    if callable(wrap):
        wrap()
    ids = tokenizer(PROBE, truncation=False).input_ids
    same = own(PROBE, truncation=False).input_ids == ids and [own.decode([i]) for i in ids] == [
        tokenizer.decode([i]) for i in ids
    ]
    return own if same else tokenizer


@lru_cache(maxsize=2)
def load_tokenizer(pad_token: str = "<|endoftext|>"):
    """Return a transformers ``CLIPTokenizer`` with SD's ids and 77 positions; no network access.

    ``pad_token="!"`` gives SDXL's second tokenizer (same ids, padded with "!").
    Cached: the tokenizer is immutable in practice and building it takes ~0.3 s.
    """
    from transformers import CLIPTokenizer

    # from_pretrained on a local folder reads vocab.json + merges.txt and never touches a hub;
    # it works with both the slow (transformers 4) and tokenizers-backed (5) CLIPTokenizer.
    return CLIPTokenizer.from_pretrained(
        str(CLIP_DIR), model_max_length=MAX_LENGTH, pad_token=pad_token, local_files_only=True
    )
