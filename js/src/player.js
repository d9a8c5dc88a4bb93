// AttentionPlayer front end: per-step x0 previews of every prompt with per-token cross-attention
// heat maps over them, streamed from the kernel while the sampler runs.
//
// Frames arrive as custom messages with binary buffers (see p2p_widgets/frames.py) and are kept
// per model in the factory closure, so every view of the model (and a view opened later) shows
// them. After a page reload `initialize` asks Python to replay what this front end lacks.
// View state (step, playing, follow, tokens, resolution, normalize, opacity, fps) lives in traits;
// the playhead is only saved on commit (pause, scrub release, key press), never per frame.
// Under the playback bar a strip of the UNet's blocks shows which layers and modules the edit rule
// changed at the step shown (`unet_cells`, `controlled`: plain lists from Python; JS only draws).
// The parts live in ./player/: store (frames per model), layout, rows, paint (canvases),
// unet_strip + strip (the UNet strip), update (redraw), playback, controls, traits.
//
// Every widget entry has the same shape, the factory `export default () => ({ initialize?, render })`:
// see ping.js for why.
import "../lib/common.css";
import "./player.css";
import { listenForDownloads } from "../lib/download.js";
import { mountErrorBanner } from "../lib/error_banner.js";
import { mountView } from "../lib/mount.js";
import { createScope } from "../lib/scope.js";
import { attachControls } from "./player/controls.js";
import { layout } from "./player/layout.js";
import { startTimer, stopTimer } from "./player/playback.js";
import { createStore } from "./player/store.js";
import { attachModel } from "./player/traits.js";
import { cancelScheduled, draw } from "./player/update.js";
import { createView } from "./player/view.js";

/** @typedef {import("../lib/types.js").PlayerTraits} PlayerTraits  the synced traits (widgets/player.py) */

/**
 * @param {{ model: import("../lib/types.js").Model<PlayerTraits>, el: HTMLElement }} args
 * @param {ReturnType<typeof createStore>} store
 */
function render({ model, el: host }, store) {
  const { el, ui, scope } = mountView(host, layout);
  scope.add(mountErrorBanner(model, ui.root));
  const v = createView(model, el, ui, store);
  scope.add(() => {
    stopTimer(v);
    cancelScheduled(v);
    v.drawToken++; // bitmaps still decoding draw nothing
  });

  attachModel(v, scope);
  attachControls(v, scope);

  if (model.get("playing") === true && v.buffer.size > 0) startTimer(v);
  else if (v.follow && v.buffer.latest() !== null) v.cursor = v.buffer.latest();
  draw(v);
  return () => scope.dispose();
}

export default () => {
  const store = createStore();
  return {
    initialize({ model }) {
      const scope = createScope();
      scope.add(listenForDownloads(model));
      scope.add(store.listen(model));
      return () => scope.dispose();
    },
    render: (args) => render(args, store),
  };
};
