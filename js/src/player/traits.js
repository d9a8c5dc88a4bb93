// Following the model: new frames from the buffer, and traits set from Python (step, playing,
// follow, fps) or by another view; everything else only asks for a redraw.
import { setPlaying, startTimer } from "./playback.js";
import { schedule } from "./update.js";

/** @typedef {import("./view.js").PlayerView} PlayerView */

const REDRAW = ["tokens", "prompts", "grids", "resolution", "normalize", "opacity", "n_evals", "unet_cells", "controlled"].map(
  (k) => `change:${k}`
);

function onBuffer(v, kind) {
  if (kind === "run") {
    v.cursor = 0;
    v.structureKey = "";
    if (v.pausedByScrub && !v.follow) {
      // a scrub during the last run paused following for that run only
      v.follow = true;
      v.commit({ follow: true });
    }
    v.pausedByScrub = false;
  } else if (kind === "frame" && v.follow && v.timer === null) {
    v.cursor = v.buffer.latest();
  }
  schedule(v);
}

function onStep(v) {
  const s = v.model.get("step");
  if (Number.isInteger(s) && s !== v.cursor) {
    v.cursor = s;
    schedule(v);
  }
}

function onPlaying(v) {
  const on = v.model.get("playing") === true;
  if (on !== (v.timer !== null)) setPlaying(v, on, false);
}

function onFollow(v) {
  v.follow = v.model.get("follow") !== false;
  if (v.follow && v.buffer.latest() !== null && v.timer === null) v.cursor = v.buffer.latest();
  schedule(v);
}

/**
 * @param {PlayerView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachModel(v, scope) {
  scope.add(v.buffer.subscribe((kind) => onBuffer(v, kind)));
  scope.onModel(v.model, "change:step", () => onStep(v));
  scope.onModel(v.model, "change:playing", () => onPlaying(v));
  scope.onModel(v.model, "change:follow", () => onFollow(v));
  scope.onModel(v.model, "change:fps", () => v.timer !== null && startTimer(v));
  scope.onModel(v.model, REDRAW, () => schedule(v));
}
