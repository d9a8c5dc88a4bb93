// The state one aligner view works on (picked chip, drag, roving focus) and its model access:
// reading tokens and links, and the two edits, link and unlink (one `links` write each).
import { addLink, chipLabel, formatWeight, removeLink, sortLinks } from "../../lib/alignment.js";

/** @typedef {"source" | "target"} Side */
/** @typedef {ReturnType<typeof createView>} AlignerView */

/**
 * @param {import("../../lib/types.js").Model<import("../../lib/types.js").AlignerTraits>} model
 * @param {import("../../lib/dom.js").Builder} el
 * @param {ReturnType<typeof import("./layout.js").layout>} ui
 * @param {{ announce(text: string): void }} announcer
 */
export function createView(model, el, ui, announcer) {
  const v = {
    model,
    el,
    doc: el.doc,
    ...ui,
    announcer,
    /** @type {{side: Side, pos: number} | null} the chip picked for pick-then-place */
    picked: null,
    /** the pointer drag in progress: {pointerId, side, pos, x0, y0, dragging, chip, over}, or null */
    drag: null,
    /** true right after a drag, so that its trailing click picks nothing */
    suppressClick: false,
    /** roving tabindex position per row */
    active: { source: null, target: null },

    /** @param {Side} side */
    tokens: (side) => model.get(`${side}_tokens`) || [],
    links: () => sortLinks(model.get("links") || []),
    showSpecial: () => !!model.get("show_special"),
    tokenAt: (side, pos) => v.tokens(side).find((t) => t.pos === pos),
    nameOf(side, pos) {
      const t = v.tokenAt(side, pos);
      return t ? `"${chipLabel(t)}"` : `token ${pos}`;
    },
    chipOf: (side, pos) => v.chipBoxes[side].querySelector(`.p2p-aligner__chip[data-pos="${pos}"]`),
    visibleChips: (side) => Array.from(v.chipBoxes[side].querySelectorAll(".p2p-aligner__chip")),
    chipVisible(side, pos) {
      const t = v.tokenAt(side, pos);
      return !!t && (v.showSpecial() || !t.special);
    },

    commit(next) {
      model.set("links", next);
      model.save_changes();
    },

    /** Link the chip (side, pos) to position otherPos of the other row. */
    link(side, pos, otherPos) {
      const [i, j] = side === "source" ? [pos, otherPos] : [otherPos, pos];
      const result = addLink(v.links(), i, j);
      if (!result.added) {
        announcer.announce(`${v.nameOf("source", i)} is already linked to ${v.nameOf("target", j)}`);
        return;
      }
      v.commit(result.links);
      const w = result.links.find((l) => l[0] === i && l[1] === j)[2];
      announcer.announce(`linked ${v.nameOf("source", i)} to ${v.nameOf("target", j)}, weight ${formatWeight(w)}`);
    },

    unlink(i, j) {
      const result = removeLink(v.links(), i, j);
      if (!result.removed) return;
      v.commit(result.links);
      announcer.announce(`removed the link ${v.nameOf("source", i)} to ${v.nameOf("target", j)}`);
    },
  };
  return v;
}

/** @param {Side} side */
export const other = (side) => (side === "source" ? "target" : "source");
