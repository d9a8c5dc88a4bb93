// The state one studio view works on: its nodes, the object URLs it holds, model access.
import { keptParamText, refused } from "./errors.js";

/** Equal as the model compares them (plain JSON values; NaN equals NaN). */
function sameValue(a, b) {
  return Object.is(a, b) || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Traits beyond StudioTraits (lib/types.js) that the panel adds: the method menu and its values.
 * @typedef {{
 *   method: string,
 *   methods: Array<{name: string, label: string, help: string, params: import("./params.js").ParamInfo[],
 *     follows_inversion: boolean, combinable: boolean}>,
 *   method_values: Object<string, any>,
 *   combine_p2p: boolean,
 *   changed_words: {source: string[], target: string[]},
 *   section: "playback" | "alignment" | "schedule",
 * }} StudioMethodTraits
 */

/** @typedef {ReturnType<typeof createView>} StudioView */

/**
 * @param {import("../../lib/types.js").Model<import("../../lib/types.js").StudioTraits>} model
 * @param {import("../../lib/dom.js").Builder} el
 * @param {ReturnType<typeof import("./layout.js").layout>} ui
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function createView(model, el, ui, scope) {
  const doc = el.doc;
  const v = {
    model,
    el,
    doc,
    win: doc.defaultView || globalThis,
    ...ui,
    /** text the user typed into a field, kept while Python rejects it: {trait: text} */
    typed: {},
    /** settingsKey() of the settings the shown results were made with, or null */
    resultKey: null,
    /** object URLs of the result images */
    urls: [],
    /** object URL of the real image's preview, or null */
    previewUrl: null,
    /** the view's listeners (results add theirs as images arrive) */
    scope,
    /** decoded RGBA of each result image (for the pixel values), filled on first use */
    pixels: new Map(),
    /** [x, y] of the pixel whose values are shown, or null */
    probe: null,
    /** which word lists show every word, not only the changed ones */
    more: { weights: false, chips: false },
    /** the text a refused parameter field keeps, or undefined */
    keptParam: (name) => keptParamText(v, name),
    /**
     * Set traits and save once; Python validates every write. A field whose value Python refused
     * and which now gets back the value the kernel holds would send nothing (the model has not
     * changed): Python is asked to check it again ("recheck"), which clears the error.
     */
    commit(changes) {
      const unchanged = Object.entries(changes).every(([k, value]) => sameValue(model.get(k), value));
      if (unchanged && Object.keys(changes).some((k) => refused(v, k))) {
        model.send({ type: "recheck", state: changes });
        return;
      }
      for (const [k, value] of Object.entries(changes)) model.set(k, value);
      model.save_changes();
    },
    busy: () => ["running", "stopping"].includes(model.get("status")),
  };
  return v;
}
