// The state one studio view works on: its nodes, the object URLs it holds, model access.
import { keptParamText } from "./errors.js";

/**
 * Traits beyond StudioTraits (lib/types.js) that the panel adds: the method menu and its values.
 * @typedef {{
 *   method: string,
 *   methods: Array<{name: string, label: string, class_name?: string, help: string, params: import("./params.js").ParamInfo[],
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
    /** what the user last committed in a field, kept while Python rejects it: {trait: {text, value}} */
    typed: {},
    /** the model's value a prompt field last showed or sent: {trait: text} (a focused field takes only a new one) */
    shown: {},
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
     * Set traits and send them to Python as one "write" message, which Python applies as a
     * front-end update (validated, all or nothing). Not save_changes: ipywidgets holds a second
     * state write until the kernel has answered the first, while messages (load_spec, run) go at
     * once, so a value typed just before loading an edit reached the kernel after the load and
     * replaced the loaded value. As messages, the writes and actions arrive in the order made.
     * A value equal to the model's is sent too: typed back into a field whose other value Python
     * refused, it clears the error.
     */
    commit(changes) {
      for (const [k, value] of Object.entries(changes)) model.set(k, value);
      model.send({ type: "write", state: changes });
    },
    busy: () => ["running", "stopping"].includes(model.get("status")),
  };
  return v;
}
