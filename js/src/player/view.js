// The state one player view works on: the playhead (cursor), follow-live, the playback timer,
// the pending redraw, and the canvases of the rows; plus model access.

/** @typedef {ReturnType<typeof createView>} PlayerView */

/**
 * @typedef {{b: number, preview: HTMLCanvasElement, tiles: {pos: number, canvas: HTMLCanvasElement}[]}} RowTiles
 */

/**
 * @param {import("../../lib/types.js").Model<import("../../lib/types.js").PlayerTraits>} model
 * @param {import("../../lib/dom.js").Builder} el
 * @param {ReturnType<typeof import("./layout.js").layout>} ui
 * @param {ReturnType<typeof import("./store.js").createStore>} store
 */
export function createView(model, el, ui, store) {
  const doc = el.doc;
  const buffer = store.buffer;
  const v = {
    model,
    el,
    doc,
    win: doc.defaultView || globalThis,
    ...ui,
    store,
    buffer,
    /** the step shown (the newest received step at or before it is drawn) */
    cursor: Number.isInteger(model.get("step")) ? model.get("step") : 0,
    follow: model.get("follow") !== false,
    /** playback interval id, or null when paused */
    timer: null,
    /** pending redraw (animation frame or timeout id), or null */
    raf: null,
    /** bumped by every draw: a slower, older draw's bitmaps are dropped */
    drawToken: 0,
    /** what the rows were built for (run, tokens, selection) */
    structureKey: "",
    /** the cells the UNet strip was built for */
    stripKey: "",
    /** opacity while its slider moves, before it is committed */
    tempOpacity: null,
    /** @type {RowTiles[]} */
    tiles: [],
    scratch: doc.createElement("canvas"),

    announce(text) {
      ui.live.textContent = "";
      ui.live.textContent = text;
    },
    nEvals: () => (buffer.header && buffer.header.nEvals) || model.get("n_evals") || 0,
    /** @returns {Array<[number, number]>} */
    selected: () => (Array.isArray(model.get("tokens")) ? model.get("tokens") : []),
    /** Set traits and save once. */
    commit(changes) {
      for (const [k, val] of Object.entries(changes)) model.set(k, val);
      model.save_changes();
    },
    /** Whether a run is streaming now (frames may still come). */
    live: () => !!buffer.header && !buffer.end,
    /** follow-live was paused by taking the playhead during a run (not by its checkbox): the next run follows again */
    pausedByScrub: false,
    /**
     * The user took the playhead. During a live run following pauses, visibly (the checkbox
     * unticks, the step label and the live region say so) and only until the next run; after a
     * run, follow-live is left as it is.
     */
    stopFollowing() {
      if (!v.follow || !v.live()) return;
      v.follow = false;
      v.pausedByScrub = true;
      model.set("follow", false);
      v.announce("following live paused: the next run follows again");
    },
  };
  return v;
}
