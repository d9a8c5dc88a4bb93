// Moving the playhead: seeking, and playing through the received frames on a timer at `fps`.
// The playhead is saved on commit (pause, end of playback, a seek that asks for it), never per frame.
import { draw, schedule } from "./update.js";

/** @typedef {import("./view.js").PlayerView} PlayerView */

/** Show `step` (clamped to the run); follow-live turns off. */
export function seek(v, step, save = true) {
  if (step === null || step === undefined) return;
  const max = Math.max(v.nEvals() - 1, v.buffer.latest() ?? 0, 0);
  v.cursor = Math.max(0, Math.min(max, step));
  v.stopFollowing();
  if (save) v.commit({ step: v.cursor });
  draw(v);
}

export function stopTimer(v) {
  if (v.timer !== null) v.win.clearInterval(v.timer);
  v.timer = null;
}

/** One playback step: the next received frame, or pause at the end of a finished run. */
function tick(v) {
  const next = v.buffer.next(v.cursor);
  if (next !== null) {
    v.cursor = next;
    schedule(v);
  } else if (v.buffer.end || !v.buffer.header) {
    stopTimer(v);
    v.commit({ playing: false, step: v.cursor });
    v.announce(`paused at step ${v.cursor + 1}`);
    schedule(v);
  }
}

/** (Re)start the playback timer at the `fps` trait. */
export function startTimer(v) {
  stopTimer(v);
  const fps = Number.isFinite(v.model.get("fps")) ? v.model.get("fps") : 6;
  v.timer = v.win.setInterval(() => tick(v), Math.max(16, 1000 / Math.max(0.5, fps)));
}

/** Play (from the start again at the end of a finished run) or pause. */
export function setPlaying(v, on, save = true) {
  if (on) {
    if (v.buffer.size === 0) return;
    if (v.buffer.next(v.cursor) === null && v.buffer.end) v.cursor = v.buffer.first();
    v.stopFollowing();
    startTimer(v);
    if (save) v.commit({ playing: true });
    v.announce("playing");
  } else {
    stopTimer(v);
    if (save) v.commit({ playing: false, step: v.cursor });
    v.announce(`paused at step ${v.cursor + 1}`);
  }
  draw(v);
}
