// The ping widget's view: a label, a button that increments `count`, and a canvas that shows the
// latest frame.
import { mountErrorBanner } from "../../lib/error_banner.js";
import { button, createBuilder } from "../../lib/dom.js";
import { keepControlKeys } from "../../lib/keys.js";
import { createScope } from "../../lib/scope.js";

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

function layout(el) {
  const label = el("div", { class: "p2p-ping__label" });
  const ping = button(el, "p2p-ping__button", "Ping");
  const count = el("span", { class: "p2p-ping__count", "aria-live": "polite" });
  const canvas = el("canvas", { class: "p2p-ping__canvas", width: 0, height: 0, role: "img", "aria-label": "latest frame" });
  const root = el("div", { class: "p2p-ping p2p-root" }, [label, ping, count, canvas]);
  return { root, label, ping, count, canvas };
}

/**
 * @param {{ model: import("../../lib/types.js").Model<import("../../lib/types.js").PingTraits>, el: HTMLElement }} args
 * @param {ReturnType<typeof import("./frames.js").createFrameStore>} frames
 */
export function renderPing({ model, el: host }, frames) {
  const ui = layout(createBuilder(host.ownerDocument));
  host.appendChild(ui.root);
  const scope = createScope();
  scope.add(() => ui.root.remove());

  const showLabel = () => {
    ui.label.textContent = model.get("label"); // text, never markup
  };
  const showCount = () => {
    ui.count.textContent = `count: ${model.get("count")}`;
  };
  showLabel();
  showCount();
  scope.add(frames.subscribe((frame) => drawFrame(ui.canvas, frame)));
  scope.onModel(model, "change:label", showLabel);
  scope.onModel(model, "change:count", showCount);
  scope.on(ui.ping, "click", () => {
    model.set("count", (model.get("count") || 0) + 1);
    model.save_changes();
  });
  scope.add(mountErrorBanner(model, ui.root));
  keepControlKeys(ui.root, scope);
  return () => scope.dispose();
}
