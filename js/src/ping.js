// PingWidget front end: a label, a button that increments `count`, and a canvas that shows the
// latest grey frame sent from Python. Exercises every transport the real widgets use: synced
// traits both ways, Python -> JS custom messages with a binary buffer, JS -> Python replies.
import "../lib/common.css"; // the error banner and screen-reader-only classes
import "./ping.css";
import { mountErrorBanner } from "../lib/error_banner.js";
import { parseFrame } from "../lib/messages.js";
import { byteSum, grayToRgba } from "../lib/pixels.js";

/** Draw RGBA bytes into a canvas; the canvas keeps the size even where 2D drawing is missing. */
function drawFrame(canvas, frame) {
  canvas.width = frame.width;
  canvas.height = frame.height;
  canvas.dataset.sum = String(frame.sum);
  const ctx = canvas.getContext ? canvas.getContext("2d") : null;
  if (ctx && typeof ImageData !== "undefined") {
    ctx.putImageData(new ImageData(frame.rgba, frame.width, frame.height), 0, 0);
  }
}

// Factory form: the frame store is per model and lives in this closure (initialize and render
// get different model proxies, so nothing is attached to `model`).
export default () => {
  /** @type {{width: number, height: number, rgba: Uint8ClampedArray, sum: number} | null} */
  let latest = null;
  const views = new Set();

  return {
    initialize({ model }) {
      const onMessage = (msg, buffers) => {
        if (!msg || msg.type !== "frame") return;
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
      };
      model.on("msg:custom", onMessage);
      return () => model.off("msg:custom", onMessage);
    },

    render({ model, el }) {
      const doc = el.ownerDocument;
      const root = doc.createElement("div");
      root.className = "p2p-ping";

      const label = doc.createElement("div");
      label.className = "p2p-ping__label";

      const button = doc.createElement("button");
      button.type = "button";
      button.className = "p2p-btn p2p-ping__button";
      button.textContent = "Ping";

      const count = doc.createElement("span");
      count.className = "p2p-ping__count";
      count.setAttribute("aria-live", "polite");

      const canvas = doc.createElement("canvas");
      canvas.className = "p2p-ping__canvas";
      canvas.width = 0;
      canvas.height = 0;
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", "latest frame");

      root.append(label, button, count, canvas);
      el.appendChild(root);

      const showLabel = () => {
        label.textContent = model.get("label"); // text, never markup
      };
      const showCount = () => {
        count.textContent = `count: ${model.get("count")}`;
      };
      const onClick = () => {
        model.set("count", (model.get("count") || 0) + 1);
        model.save_changes();
      };
      const onFrame = (frame) => drawFrame(canvas, frame);

      showLabel();
      showCount();
      if (latest) onFrame(latest);
      model.on("change:label", showLabel);
      model.on("change:count", showCount);
      button.addEventListener("click", onClick);
      views.add(onFrame);
      const removeBanner = mountErrorBanner(model, root);

      return () => {
        model.off("change:label", showLabel);
        model.off("change:count", showCount);
        button.removeEventListener("click", onClick);
        views.delete(onFrame);
        removeBanner();
        root.remove();
      };
    },
  };
};
