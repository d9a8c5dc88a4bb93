// The player's frames, one store per model (every view of the model reads it): custom messages
// from Python (p2p_widgets/frames.py) fill a FrameBuffer; decoded previews are cached per frame.
import { FrameBuffer, parseEnd, parseFrameMessage, parseRunHeader } from "../../lib/framebuffer.js";

export function createStore() {
  const buffer = new FrameBuffer();
  /** decoded previews, shared by the views: key "run:step:b" -> Promise<ImageBitmap | null> */
  const bitmaps = new Map();

  function dropBitmaps() {
    for (const p of bitmaps.values()) p.then((bmp) => bmp && bmp.close && bmp.close()).catch(() => {});
    bitmaps.clear();
  }

  /** The decoded preview of prompt `b` in `frame` (null where it cannot be decoded). */
  function bitmapFor(frame, b) {
    const key = `${frame.run}:${frame.step}:${b}`;
    let p = bitmaps.get(key);
    if (!p) {
      p =
        typeof createImageBitmap === "function"
          ? createImageBitmap(new Blob([frame.images[b]], { type: frame.mime })).catch(() => null)
          : Promise.resolve(null);
      bitmaps.set(key, p);
    }
    return p;
  }

  /** Apply one message of the frames protocol; throws on a malformed one. */
  function apply(msg, buffers) {
    if (msg.type === "run") {
      if (buffer.begin(parseRunHeader(msg))) dropBitmaps();
    } else if (msg.type === "frame") {
      buffer.add(parseFrameMessage(msg, buffers));
    } else if (msg.type === "end") {
      buffer.finish(parseEnd(msg));
    } else if (msg.type === "clear") {
      buffer.clear(Number.isInteger(msg.run) ? msg.run : null);
      dropBitmaps();
    }
  }

  /**
   * Take the model's frame messages (from initialize); a malformed one is reported to Python as a
   * client_error. Returns the cleanup.
   */
  function listen(model) {
    const onMessage = (msg, buffers) => {
      if (!msg || typeof msg.type !== "string") return;
      try {
        apply(msg, buffers);
      } catch (err) {
        model.send({ type: "client_error", message: `${msg.type}: ${err.message}` });
      }
    };
    model.on("msg:custom", onMessage);
    // a fresh front end (first display or a reloaded page) asks for the frames it lacks
    model.send({ type: "replay", run: buffer.run, have: buffer.steps.slice() });
    return () => {
      model.off("msg:custom", onMessage);
      dropBitmaps();
    };
  }

  return { buffer, bitmapFor, listen };
}
