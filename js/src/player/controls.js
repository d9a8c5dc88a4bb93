// The player's controls: keys on the player (arrows/Home/End step through received frames,
// Space or k plays and pauses), play, GIF, token chips, the step slider, follow-live, and the
// map options (resolution, scale, overlay opacity).
import { seek, setPlaying, stopTimer } from "./playback.js";
import { draw, schedule } from "./update.js";

/** @typedef {import("./view.js").PlayerView} PlayerView */

/** Where a key moves the playhead, or undefined when it does not. */
function keyTarget(v, key) {
  const { buffer, cursor } = v;
  if (key === "ArrowRight" || key === "ArrowUp") return buffer.next(cursor) ?? cursor;
  if (key === "ArrowLeft" || key === "ArrowDown") return buffer.prev(cursor) ?? cursor;
  if (key === "Home") return buffer.first() ?? 0;
  if (key === "End") return buffer.latest() ?? 0;
  return undefined;
}

function onKey(v, e) {
  if (e.target === v.slider && e.key.startsWith("Arrow")) return; // the range input moves itself
  const tag = e.target && e.target.tagName;
  if (tag === "SELECT" || (tag === "INPUT" && e.target !== v.slider && e.target.type !== "checkbox")) return;
  const to = keyTarget(v, e.key);
  const toggle = (e.key === " " || e.key === "k") && tag !== "BUTTON";
  if (to !== undefined) seek(v, to);
  else if (toggle) setPlaying(v, v.timer === null);
  else return;
  e.preventDefault();
  e.stopPropagation();
  if (e.key !== " " && e.key !== "k") v.announce(v.stepLabel.textContent);
}

function toggleToken(v, chip) {
  const b = Number(chip.dataset.prompt);
  const pos = Number(chip.dataset.token);
  const sel = v.selected().filter(([sb, sp]) => !(sb === b && sp === pos));
  const on = sel.length === v.selected().length;
  if (on) sel.push([b, pos]);
  sel.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  v.commit({ tokens: sel });
  v.announce(`${chip.textContent} ${on ? "shown" : "hidden"}`);
}

function onClick(v, e) {
  const target = e.target;
  if (!(target instanceof v.win.Element)) return;
  if (target === v.playButton) return setPlaying(v, v.timer === null);
  if (target === v.gifButton) {
    v.model.send({ type: "export_gif" });
    v.announce("GIF requested");
    return;
  }
  const chip = target.closest(".p2p-player__chip");
  if (chip) toggleToken(v, chip);
}

function onFollow(v) {
  v.follow = v.followBox.checked;
  v.pausedByScrub = false; // the user's own choice stays
  if (v.follow) {
    stopTimer(v);
    if (v.buffer.latest() !== null) v.cursor = v.buffer.latest();
    v.commit({ follow: true, playing: false });
  } else v.commit({ follow: false });
  draw(v);
}

/**
 * @param {PlayerView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachControls(v, scope) {
  scope.on(v.root, "keydown", (e) => onKey(v, e));
  scope.on(v.root, "click", (e) => onClick(v, e));
  scope.on(v.slider, "input", () => seek(v, Number(v.slider.value), false));
  scope.on(v.slider, "change", () => v.commit({ step: v.cursor }));
  scope.on(v.followBox, "change", () => onFollow(v));
  scope.on(v.resSelect, "change", () => v.commit({ resolution: Number(v.resSelect.value) }));
  scope.on(v.normSelect, "change", () => v.commit({ normalize: v.normSelect.value }));
  scope.on(v.opacity, "input", () => {
    v.tempOpacity = Number(v.opacity.value);
    schedule(v);
  });
  scope.on(v.opacity, "change", () => {
    const value = Number(v.opacity.value);
    v.tempOpacity = null;
    v.commit({ opacity: value });
  });
}
