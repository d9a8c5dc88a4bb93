// Bringing the whole view up to date with the buffer and the traits: rows, controls, step label,
// the UNet strip, and the frame at the playhead. `schedule` batches updates into the next animation frame.
import { drawFrame } from "./paint.js";
import { rebuild, syncResolutions } from "./rows.js";
import { drawStrip } from "./strip.js";

/** @typedef {import("./view.js").PlayerView} PlayerView */

function showControls(v, n) {
  const { buffer, model } = v;
  v.normSelect.value = model.get("normalize") === "global" ? "global" : "token";
  v.opacity.value = String(v.tempOpacity ?? model.get("opacity") ?? 0.6);
  v.slider.max = String(Math.max(n - 1, buffer.latest() ?? 0, 0));
  v.slider.value = String(v.cursor);
  v.slider.disabled = buffer.size === 0;
  v.followBox.checked = v.follow;
  const playing = v.timer !== null;
  v.playButton.textContent = playing ? "Pause" : "Play";
  v.playButton.setAttribute("aria-label", playing ? "pause" : "play");
  v.playButton.setAttribute("aria-pressed", playing ? "true" : "false");
  v.gifButton.disabled = buffer.size === 0;
  v.empty.hidden = buffer.size > 0 || (buffer.header && buffer.header.prompts.length > 0);
  v.root.dataset.frames = String(buffer.size);
  v.root.dataset.run = String(buffer.run ?? "");
  v.root.dataset.status = buffer.end ? buffer.end.status : buffer.header ? "running" : "idle";
}

function stepText(v, frame, n) {
  const { buffer } = v;
  const total = n ? ` / ${n}` : "";
  const shown = frame.step === v.cursor ? "" : ` (showing ${frame.step})`;
  const state = buffer.end
    ? buffer.end.status === "done"
      ? ""
      : ` · ${buffer.end.status}`
    : v.follow
      ? " · live"
      : " · live, not following (tick follow live)";
  return `step ${v.cursor + 1}${total}${shown} · t=${frame.timestep}${state}`;
}

/** Update everything now. */
export function draw(v) {
  v.raf = null;
  rebuild(v);
  const n = v.nEvals();
  const frame = v.buffer.at(v.cursor);
  syncResolutions(v, frame);
  showControls(v, n);
  drawStrip(v, frame ? frame.step : v.cursor); // the step whose picture is shown
  if (!frame) {
    v.stepLabel.textContent = v.buffer.header ? "waiting for the first step…" : "no frames yet";
    return;
  }
  v.stepLabel.textContent = stepText(v, frame, n);
  v.root.dataset.shownStep = String(frame.step);
  drawFrame(v, frame);
}

/** Update in the next animation frame (once, however often it is asked for). */
export function schedule(v) {
  if (v.raf !== null) return;
  if (typeof v.win.requestAnimationFrame === "function") v.raf = v.win.requestAnimationFrame(() => draw(v));
  else v.raf = v.win.setTimeout(() => draw(v), 0);
}

/** Drop a pending update. */
export function cancelScheduled(v) {
  if (v.raf === null) return;
  if (typeof v.win.cancelAnimationFrame === "function") v.win.cancelAnimationFrame(v.raf);
  v.win.clearTimeout(v.raf);
  v.raf = null;
}
