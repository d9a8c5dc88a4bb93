"""PingWidget: the smallest real widget, used to exercise every layer of the test ladder.

>>> from p2p_widgets.widgets import PingWidget
>>> w = PingWidget(label="hello")
>>> w                                     # click "Ping": w.count goes up
>>> w.send_frame(np.zeros((8, 8), np.uint8))   # drawn in the canvas; w.last_ack gets the byte sum
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import traitlets

from ..errors import MessageError, is_int
from ._base import P2PWidget, on_message

MAX_SIDE = 4096  # same limit as js/lib/messages.js
_MAX_PENDING = 256


class PingWidget(P2PWidget):
    """A label, a button that increments ``count``, and a canvas for grey frames from Python."""

    _bundle = "ping"
    _frontend_keys = frozenset({"count"})

    label = traitlets.Unicode("ping", help="Text shown above the button (plain text).").tag(sync=True)
    count = traitlets.Int(0, help="Button clicks so far.").tag(sync=True)

    #: byte sum the front end reported for the latest frame it drew (None before any)
    last_ack = traitlets.Int(None, allow_none=True)
    #: frames sent so far; also the sequence number of the next frame
    frames_sent = traitlets.Int(0)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._pending: OrderedDict[int, int] = OrderedDict()  # seq -> expected byte sum

    @traitlets.validate("count")
    def _check_count(self, proposal):
        value = proposal["value"]
        if value < 0:
            raise traitlets.TraitError(f"count must be >= 0, got {value}")
        return value

    def send_frame(self, image) -> int:
        """Send a grey ``uint8`` image of shape (H, W) to the front end; return its sequence number.

        The front end draws it and answers with the byte sum, stored in :attr:`last_ack`.
        """
        a = np.asarray(image)
        if a.dtype != np.uint8:
            raise TypeError(f"frame must be uint8, got {a.dtype}")
        if a.ndim != 2:
            raise ValueError(f"frame must have shape (H, W), got {a.shape}")
        h, w = a.shape
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
            raise ValueError(f"frame sides must be in [1, {MAX_SIDE}], got {a.shape}")
        seq = self.frames_sent
        self._pending[seq] = int(a.sum(dtype=np.uint64))
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)
        self.send_binary({"type": "frame", "shape": [h, w], "seq": seq}, [a])
        self.frames_sent = seq + 1
        return seq

    @on_message("frame_ack")
    def _on_frame_ack(self, content: dict, buffers: list) -> None:
        total = content.get("sum")
        if not is_int(total) or total < 0:
            raise MessageError(f"'sum' must be a non-negative integer, got {total!r}")
        if buffers:
            raise MessageError("frame_ack carries no buffers")
        seq = content.get("seq")
        if seq is not None:
            if not is_int(seq):
                raise MessageError(f"'seq' must be an integer, got {seq!r}")
            expected = self._pending.pop(seq, None)
            if expected is None:
                raise MessageError(f"no frame with seq {seq} is waiting for an ack")
            if expected != total:
                raise MessageError(f"frame {seq}: front end summed {total}, Python sent {expected}")
        self.last_ack = total
