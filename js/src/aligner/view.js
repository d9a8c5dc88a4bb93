// The state one aligner view works on (picked chip, drag, roving focus, the rows of each token
// segment) and its model access: reading tokens and links, and the two edits, link and unlink
// (one `links` write each). Positions count over the whole prompt, so a chip is found by side and
// position alone; a link joins tokens of one segment (Python refuses any other).
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
    /** roving tabindex position per row (rowKey(side, segment) -> position) */
    active: {},
    /** the pairs of rows on the stage: {segments: [name, ...], boxes: {rowKey: chip box}} */
    rows: { segments: [], boxes: {} },
    /** the shared-weight notice: {i, links of source i when it was shown, text}, or null */
    shared: null,

    /** The tokens of a row (of one token segment, or of all). @param {Side} side @param {string} [segment] */
    tokens: (side, segment) => {
      const all = model.get(`${side}_tokens`) || [];
      return segment === undefined ? all : all.filter((t) => (t.segment || "") === segment);
    },
    /** The token segments in order (SD3: "CLIP", "T5"; [""] for a prompt of one segment). */
    segments() {
      const names = [];
      for (const side of ["source", "target"]) {
        for (const t of v.tokens(side)) if (!names.includes(t.segment || "")) names.push(t.segment || "");
      }
      return names.length ? names : [""];
    },
    segmentOf: (side, pos) => {
      const t = v.tokenAt(side, pos);
      return t ? t.segment || "" : "";
    },
    links: () => sortLinks(model.get("links") || []),
    showSpecial: () => !!model.get("show_special"),
    tokenAt: (side, pos) => v.tokens(side).find((t) => t.pos === pos),
    nameOf(side, pos) {
      const t = v.tokenAt(side, pos);
      if (!t) return `token ${pos}`;
      return t.segment ? `"${chipLabel(t)}" (${t.segment})` : `"${chipLabel(t)}"`;
    },
    chipOf: (side, pos) => v.stage.querySelector(`.p2p-aligner__chip[data-side="${side}"][data-pos="${pos}"]`),
    /** The shown chips of a row (of one segment, or of every segment in order). */
    visibleChips(side, segment) {
      const box = segment === undefined ? v.stage : v.rows.boxes[rowKey(side, segment)];
      return box ? Array.from(box.querySelectorAll(`.p2p-aligner__chip[data-side="${side}"]`)) : [];
    },
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
      if (v.segmentOf("source", i) !== v.segmentOf("target", j)) {
        // Python refuses it too: the mapper aligns each segment (SD3's CLIP, T5) with its own tokens
        announcer.announce(
          `not linked: ${v.nameOf("source", i)} and ${v.nameOf("target", j)} are in different token segments; ` +
            "link tokens of one pair of rows"
        );
        return;
      }
      const before = v.links();
      const result = addLink(before, i, j);
      if (!result.added) {
        announcer.announce(`${v.nameOf("source", i)} is already linked to ${v.nameOf("target", j)}`);
        return;
      }
      const w = result.links.find((l) => l[0] === i && l[1] === j)[2];
      const shared = sharedText(v, before, result.links, i);
      // set before the write: the write redraws the links, and the notice with them
      v.shared = shared ? { i, links: result.links.filter((l) => l[0] === i), text: shared } : null;
      v.commit(result.links);
      const linked = `linked ${v.nameOf("source", i)} to ${v.nameOf("target", j)}, weight ${formatWeight(w)}`;
      announcer.announce(shared ? `${linked}. ${shared}` : linked);
    },

    unlink(i, j) {
      const result = removeLink(v.links(), i, j);
      if (!result.removed) return;
      v.shared = null;
      v.commit(result.links);
      announcer.announce(`removed the link ${v.nameOf("source", i)} to ${v.nameOf("target", j)}`);
    },
  };
  return v;
}

/**
 * What adding a link did to the source's other links, in words, or "" when their weights stayed
 * (a new link only changes them when they were an even split: addLink shares the weight out).
 */
function sharedText(v, before, after, i) {
  const old = new Map(before.filter((l) => l[0] === i).map((l) => [l[1], l[2]]));
  const mine = after.filter((l) => l[0] === i);
  const changed = mine.some(([, j, w]) => old.has(j) && Math.abs(old.get(j) - w) > 1e-9);
  if (!changed) return "";
  const parts = mine.map(([, j, w]) => `${formatWeight(w)} to ${v.nameOf("target", j)}`).join(", ");
  return (
    `${v.nameOf("source", i)} now feeds ${mine.length} targets, so its weight is shared: ${parts}. ` +
    "Change a weight in the links list to give a link more."
  );
}

/** Show the shared-weight notice while the source's links are still the ones it describes. */
export function renderNotice(v) {
  const s = v.shared;
  const now = s ? v.links().filter((l) => l[0] === s.i) : [];
  const same =
    !!s &&
    now.length === s.links.length &&
    now.every((l, k) => l[1] === s.links[k][1] && Math.abs(l[2] - s.links[k][2]) < 1e-6);
  if (!same) v.shared = null;
  v.notice.hidden = !same;
  v.notice.textContent = same ? s.text : "";
}

/** @param {Side} side */
export const other = (side) => (side === "source" ? "target" : "source");

/** The key of one row: a side of one token segment. @param {Side} side @param {string} segment */
export const rowKey = (side, segment) => `${side}|${segment}`;
