"""Shared base for the p2p_widgets anywidget widgets.

What every widget gets from :class:`P2PWidget`:

- its front end from the committed bundle ``p2p_widgets/static/<_bundle>.js`` (and
  ``<_bundle>.css`` when present), set with the class attribute ``_bundle``;
- a synced ``error`` trait that the front end shows in a banner (``role="alert"``);
- strict keyword arguments: an unknown name raises ``TypeError`` instead of being ignored;
- :meth:`P2PWidget.send_binary` to send a custom message with binary buffers;
- routing of inbound custom messages ``{"type": <kind>, ...}`` to methods marked with
  :func:`on_message`; a malformed message sets ``error`` and the widget stays usable;
- a front-end trait update that fails validation sets ``error`` and puts the front end back to
  the Python value instead of leaving the two sides out of step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import traitlets

from ..errors import MessageError

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

_log = logging.getLogger(__name__)
_MAX_ERROR_CHARS = 2000


def in_range(proposal, low: float, high: float = math.inf, *, open_low: bool = False, open_high: bool = False):
    """For ``@traitlets.validate``: the proposed value if it is finite and inside the range, else a
    TraitError naming the trait and the range in plain words."""
    value = proposal["value"]
    above = value > low if open_low else value >= low
    below = value < high if open_high else value <= high
    if isinstance(value, bool) or not math.isfinite(value) or not (above and below):
        name = proposal["trait"].name.replace("_", " ")
        if high == math.inf:
            raise traitlets.TraitError(f"{name} must be {'above' if open_low else 'at least'} {low:g}; {value} is not")
        if open_low or open_high:
            raise traitlets.TraitError(f"{name} must be between {low:g} and {high:g} (not either end); {value} is not")
        raise traitlets.TraitError(f"{name} must be from {low:g} to {high:g}; {value} is not")
    return value


def on_message(kind: str) -> Callable[[Callable], Callable]:
    """Mark a method as the handler of inbound custom messages whose ``type`` is ``kind``.

    The method is called as ``handler(self, content: dict, buffers: list[memoryview])`` and
    raises :class:`MessageError` for bad content.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError("message kind must be a non-empty string")

    def mark(fn: Callable) -> Callable:
        fn._p2p_message_kind = kind
        return fn

    return mark


def bundle_path(name: str, suffix: str = ".js") -> Path:
    """Path of a built front-end file in ``p2p_widgets/static``."""
    return STATIC_DIR / f"{name}{suffix}"


def _as_buffer(obj: Any) -> memoryview:
    """bytes-like or numpy array -> a contiguous byte memoryview (no copy when possible)."""
    if isinstance(obj, (bytes, bytearray)):
        return memoryview(obj)
    if isinstance(obj, memoryview):
        return obj if obj.c_contiguous and obj.format == "B" else memoryview(obj.tobytes())
    if type(obj).__module__ == "numpy" and hasattr(obj, "dtype"):
        import numpy as np

        return memoryview(np.ascontiguousarray(obj)).cast("B")
    raise TypeError(f"buffers must be bytes, bytearray, memoryview or numpy arrays, not {type(obj).__name__}")


class P2PWidget(anywidget.AnyWidget):
    """Base class of the p2p_widgets widgets (see the module docstring)."""

    #: name of the bundle in p2p_widgets/static (without suffix); set it in each subclass
    _bundle: ClassVar[str | None] = None
    _frontend_keys: ClassVar[frozenset] = frozenset()  # traits the page may write (never _esm, error, ...)
    _first_keys: ClassVar[tuple] = ()  # written before the rest of an update
    # True where the front end shows a refused value's error beside its field and keeps the text
    # (the Studio): the error then stays until that field is fixed, not until any write succeeds
    _field_errors: ClassVar[bool] = False
    #: message kind -> method name, collected from @on_message methods along the MRO
    _message_handlers: ClassVar[dict[str, str]] = {}

    error = traitlets.Unicode("", help="Last error, shown by the front end; empty when none.").tag(sync=True)
    error_field = traitlets.Unicode(
        "", help="The trait the error is about ('' for none): the front end shows the error next to that field."
    ).tag(sync=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        bundle = cls.__dict__.get("_bundle")
        if bundle:
            js = bundle_path(bundle, ".js")
            if not js.is_file():
                raise FileNotFoundError(f"front-end bundle {js} is missing: run `npm run build` in js/")
            cls._esm = js
            css = bundle_path(bundle, ".css")
            if css.is_file():
                cls._css = css
        handlers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                kind = getattr(value, "_p2p_message_kind", None)
                if kind is not None:
                    handlers[kind] = attr
        cls._message_handlers = handlers
        super().__init_subclass__(**kwargs)

    def __init__(self, **kwargs: Any) -> None:
        # set by a widget this one is part of (the Studio): called with the keys of a front-end update
        # or [message type], it returns a reason to refuse it now (a run in progress) or ''
        self.update_guard: Callable[[list], str] | None = None
        unknown = sorted(k for k in kwargs if not self.has_trait(k))
        if unknown:
            public = sorted(n for n in self.trait_names(sync=True) if not n.startswith("_"))
            raise TypeError(
                f"{type(self).__name__} got unknown keyword argument(s) {', '.join(unknown)}; "
                f"settable traits: {', '.join(public)}"
            )
        super().__init__(**kwargs)
        self.on_msg(self._dispatch_message)

    # -- errors --------------------------------------------------------------------------------

    def report_error(self, message: str, field: str = "") -> None:
        """Show ``message`` in the widget's error banner, or next to the control of the trait
        ``field`` where the front end has one (and log it)."""
        message = str(message)[:_MAX_ERROR_CHARS]
        _log.debug("%s: %s", type(self).__name__, message)
        with self.hold_sync():
            self.error_field = str(field)
            self.error = message

    def clear_error(self) -> None:
        """Hide the error banner."""
        with self.hold_sync():
            self.error, self.error_field = "", ""

    # -- outbound ------------------------------------------------------------------------------

    def send_binary(self, content: dict, buffers: Sequence[Any] = ()) -> None:
        """Send a custom message ``content`` (a JSON-able dict with a string ``type``) plus
        binary ``buffers`` (bytes-like or numpy arrays; the front end gets DataViews)."""
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            raise TypeError("content must be a dict with a string 'type'")
        self.send(content, buffers=[_as_buffer(b) for b in buffers])

    # -- inbound -------------------------------------------------------------------------------

    def _dispatch_message(self, _widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if not isinstance(content, dict):
                raise MessageError(f"message must be an object, got {type(content).__name__}")
            if not isinstance(kind, str):
                raise MessageError("message has no string 'type'")
            name = self._message_handlers.get(kind)
            if name is None:
                raise MessageError(f"unknown message type {kind!r}")
            refusal = self.update_guard([kind]) if self.update_guard is not None and kind != "client_error" else ""
            if refusal:
                raise MessageError(refusal)
            getattr(self, name)(content, list(buffers or []))
        except MessageError as exc:
            self.report_error(f"{kind if isinstance(kind, str) else 'message'}: {exc}")
        except Exception as exc:  # a bug in a handler must not break the widget
            _log.exception("handler for %r failed", kind)
            self.report_error(f"{kind}: internal error {type(exc).__name__}: {exc}")

    @on_message("client_error")
    def _on_client_error(self, content: dict, buffers: list) -> None:
        message = content.get("message")
        if not isinstance(message, str):
            raise MessageError("'message' must be a string")
        self.report_error(f"front end: {message}")

    @on_message("write")
    def _on_write(self, content: dict, buffers: list) -> None:
        """A front-end update sent as a message (the Studio's page sends its writes so): applied
        exactly as one (checked, all or nothing). Messages keep their order with the actions
        (``run``, ``load_spec``), where ipywidgets holds a state write back until the kernel has
        answered the one before; and a value equal to the kernel's, typed back into a field whose
        other value was refused, still arrives and clears that error."""
        state = content.get("state")
        if not isinstance(state, dict) or not state or not all(isinstance(k, str) for k in state):
            raise MessageError("'state' must be an object of trait values")
        self.set_state(state)

    def set_state(self, sync_data: dict) -> None:
        """Apply a front-end update, all of it or nothing. Only ``_frontend_keys`` may be written
        (``_first_keys`` before the rest, so e.g. links are checked against the new prompt text);
        a refused update sets ``error`` (and ``error_field`` when it wrote one trait), leaves every
        trait as it was and resyncs the front end; a valid write of the trait an error was about
        clears that error."""
        keys = [k for k in sync_data if k in self.keys]
        foreign = sorted(k for k in keys if k not in self._frontend_keys)
        refusal = self._refuse_update(keys)
        if foreign or refusal:
            self.report_error(refusal or f"not applied: {', '.join(foreign)} cannot be set from the page")
            self.send_state(keys)
            return
        # every writable trait: observers of the first part may change others (e.g. words of a new prompt)
        before = {k: getattr(self, k) for k in sorted(self._frontend_keys, key=lambda k: k not in self._first_keys)}
        first = {k: v for k, v in sync_data.items() if k in self._first_keys}
        rest = {k: v for k, v in sync_data.items() if k not in first}
        try:
            for part in (first, rest):
                if part:
                    super().set_state(part)
        except traitlets.TraitError as exc:
            with self.hold_sync():
                for k, v in before.items():  # all or nothing: the first part (prompts) back first
                    setattr(self, k, v)
            self.report_error(f"not applied: {exc}", field=keys[0] if len(keys) == 1 else "")
            self.send_state(keys)
            return
        fixed = self.error_field in keys or not (self._field_errors and self.error_field)
        if fixed and self.error.startswith("not applied:"):
            self.clear_error()  # an update was accepted after a refused one (that field, where errors sit by fields)

    def _refuse_update(self, keys: list) -> str:
        """A reason to refuse any front-end update now (e.g. a run in progress), or ''."""
        return self.update_guard(keys) if self.update_guard is not None else ""


class PromptCache:
    """Prompts of the last ``size`` texts seen. Widgets re-read their prompts on every edit;
    tokenizing again each time would cost a tokenizer call per keystroke."""

    def __init__(self, tokenizer=None, size: int = 32):
        from ..engine.prompts import prompt_maker

        # a tokenizer, the model (an Editor or its backend) whose prompts may span token segments, or
        # None: the bundled CLIP tokenizer (prompt_maker's default)
        self.size = size
        self._make = prompt_maker(tokenizer)
        self._prompts: dict = {}

    def __call__(self, text: str):
        if not isinstance(text, str):  # a model's prompt() would hand a Prompt back unchecked
            from ..errors import P2PError

            raise P2PError(f"a prompt must be a string, got {type(text).__name__}")
        prompt = self._prompts.get(text)
        if prompt is None:
            prompt = self._make(text)  # raises a P2PError naming the problem
            if len(self._prompts) >= self.size:
                self._prompts.pop(next(iter(self._prompts)))
            self._prompts[text] = prompt
        return prompt

    def check_trait(self, proposal) -> str:
        """For ``@traitlets.validate`` of a prompt-text trait: the text, or a TraitError naming the trait."""
        return self.check(proposal["trait"].name, proposal["value"])

    def check(self, name: str, text: str) -> str:
        """``text``, or a TraitError naming the trait ``name`` it was meant for."""
        from ..errors import P2PError

        try:
            self(text)
        except P2PError as exc:
            raise traitlets.TraitError(f"{name}: {exc}") from None
        return text
