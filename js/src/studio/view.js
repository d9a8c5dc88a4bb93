// The state one studio view works on: its nodes, the object URLs it holds, model access.

/** @typedef {ReturnType<typeof createView>} StudioView */

/**
 * @param {import("../../lib/types.js").Model<import("../../lib/types.js").StudioTraits>} model
 * @param {import("../../lib/dom.js").Builder} el
 * @param {ReturnType<typeof import("./layout.js").layout>} ui
 */
export function createView(model, el, ui) {
  const doc = el.doc;
  return {
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
    /** Set traits and save once; Python validates every write. */
    commit(changes) {
      for (const [k, v] of Object.entries(changes)) model.set(k, v);
      model.save_changes();
    },
    busy: () => ["running", "stopping"].includes(model.get("status")),
  };
}
