// The panels under the stage: the links list (editable weights, remove buttons) and the heat map
// of M on the shown rows and columns (one per token segment).
import { chipLabel, formatWeight, heatColor, matrixFromLinks, visibleTokens } from "../../lib/alignment.js";

/** @typedef {import("./view.js").AlignerView} AlignerView */

function linkRow(v, i, j, w) {
  const pair = `${v.nameOf("source", i)} to ${v.nameOf("target", j)}`;
  const label = (side, pos) => {
    const t = v.tokenAt(side, pos);
    if (!t) return String(pos);
    return t.segment ? `${chipLabel(t)} (${t.segment})` : chipLabel(t); // SD3: the same word in CLIP and T5
  };
  const weight = v.el("input", {
    class: "p2p-aligner__weight p2p-focusable",
    type: "number",
    step: "0.05",
    min: "-10",
    max: "10",
    value: String(Math.round(w * 1e4) / 1e4),
    dataset: { i, j },
    "aria-label": `weight of ${pair}`,
  });
  const rm = v.el("button", {
    class: "p2p-btn p2p-aligner__remove",
    text: "×",
    type: "button",
    dataset: { i, j },
    "aria-label": `remove the link ${pair}`,
  });
  return v.el("tr", { class: "p2p-aligner__item", dataset: { i, j } }, [
    v.el("td", { class: "p2p-aligner__item-src", text: label("source", i) }),
    v.el("td", { class: "p2p-aligner__arrow", text: "→" }),
    v.el("td", { class: "p2p-aligner__item-tgt", text: label("target", j) }),
    v.el("td", {}, [weight]),
    v.el("td", {}, [rm]),
  ]);
}

/** The links whose two chips are shown, one row each. */
export function renderList(v) {
  v.listBody.replaceChildren();
  const shown = v.links().filter(([i, j]) => v.chipVisible("source", i) && v.chipVisible("target", j));
  for (const [i, j, w] of shown) v.listBody.append(linkRow(v, i, j, w));
  v.list.hidden = shown.length === 0;
  v.listEmpty.hidden = shown.length !== 0;
}

function heatCell(v, s, t, w, max) {
  const td = v.el("td", {
    class: "p2p-aligner__cell",
    text: w ? formatWeight(w) : "",
    dataset: { i: s.pos, j: t.pos, w },
    style: { backgroundColor: heatColor(w, Math.max(1, max)) },
  });
  if (Math.abs(w) > 0.55 * Math.max(1, max)) td.classList.add("p2p-aligner__cell--strong");
  td.title = `${chipLabel(s)} → ${chipLabel(t)}: ${formatWeight(w)}`;
  return td;
}

/** One segment's block of M (BOS/EOS fed automatically, as the engine does) on its shown tokens. */
function heatTable(v, segment) {
  const src = v.tokens("source", segment);
  const tgt = v.tokens("target", segment);
  // a segment's positions start at its first token (BOS, or T5's first word): local indices from there
  const s0 = src.length ? src[0].pos : 0;
  const t0 = tgt.length ? tgt[0].pos : 0;
  // T5's prompts (Flux, SD3's second segment) start with a word, not BOS: nothing feeds it by itself
  const bos = !!(src[0] && src[0].special === "bos" && tgt[0] && tgt[0].special === "bos");
  const local = v.links().map(([i, j, w]) => [i - s0, j - t0, w]);
  const m = matrixFromLinks(local, src.length, tgt.length, { bos });
  const rowsShown = visibleTokens(src, v.showSpecial());
  const colsShown = visibleTokens(tgt, v.showSpecial());
  let max = 0;
  for (const row of m) for (const x of row) max = Math.max(max, Math.abs(x));
  const head = v.el("tr", {}, [
    v.el("th", { class: "p2p-aligner__corner" }),
    ...colsShown.map((t) => v.el("th", { class: "p2p-aligner__colhead", text: chipLabel(t), scope: "col" })),
  ]);
  const body = rowsShown.map((s) =>
    v.el("tr", {}, [
      v.el("th", { class: "p2p-aligner__rowhead", text: chipLabel(s), scope: "row" }),
      ...colsShown.map((t) => heatCell(v, s, t, m[s.pos - s0] ? m[s.pos - s0][t.pos - t0] || 0 : 0, max)),
    ])
  );
  const what = segment ? `M, ${segment} tokens` : "M";
  return v.el("table", { class: "p2p-aligner__heat", dataset: { segment } }, [
    v.el("caption", { text: `${what}: source tokens (rows) feed target tokens (columns)` }),
    v.el("thead", {}, [head]),
    v.el("tbody", {}, body),
  ]);
}

/** M on the shown tokens: one table per token segment (M is block-diagonal over them). */
export function renderHeat(v) {
  v.heatBox.replaceChildren(...v.segments().map((segment) => heatTable(v, segment)));
}
