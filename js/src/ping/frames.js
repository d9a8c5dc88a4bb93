// The ping widget's frame store: one per model, shared by its views. Python sends grey frames as
// custom messages; each is checked, acknowledged with its byte sum, and shown by every view.
import { parseFrame } from "../../lib/messages.js";
import { byteSum, grayToRgba } from "../../lib/pixels.js";

/** @typedef {{width: number, height: number, rgba: Uint8ClampedArray, sum: number}} ShownFrame */

export function createFrameStore() {
  /** @type {ShownFrame | null} */
  let latest = null;
  /** @type {Set<(frame: ShownFrame) => void>} */
  const views = new Set();

  /** The frame an {"type": "frame"} message carries, or a client_error to Python. */
  function receive(model, msg, buffers) {
    let frame;
    try {
      frame = parseFrame(msg, buffers);
    } catch (err) {
      model.send({ type: "client_error", message: `bad frame: ${err.message}` });
      return;
    }
    const sum = byteSum(frame.gray);
    latest = { width: frame.width, height: frame.height, rgba: grayToRgba(frame.gray, frame.width, frame.height), sum };
    const ack = { type: "frame_ack", sum };
    if (frame.seq !== null) ack.seq = frame.seq;
    model.send(ack);
    for (const view of views) view(latest);
  }

  return {
    /** Listen for frames on `model` (from initialize); returns the cleanup. */
    listen(model) {
      const onMessage = (msg, buffers) => {
        if (msg && msg.type === "frame") receive(model, msg, buffers);
      };
      model.on("msg:custom", onMessage);
      return () => model.off("msg:custom", onMessage);
    },

    /** Call `show` with the latest frame now (if any) and with every later one; returns the unsubscribe. */
    subscribe(show) {
      if (latest) show(latest);
      views.add(show);
      return () => views.delete(show);
    },
  };
}
