// The rows of token chips, a source and a target row per token segment: drawing them (grouped by
// word, roving tabindex per row), their link state (pressed, linked, new, accessible names), focus
// moves, and pick-then-place (within one segment).
import { chipLabel, formatWeight, groupWords, visibleTokens } from "../../lib/alignment.js";
import { SIDES, segmentPair } from "./layout.js";
import { other, rowKey } from "./view.js";

/** @typedef {import("./view.js").AlignerView} AlignerView */

function chipNode(v, side, t) {
  const segment = t.segment || "";
  const chip = v.el("button", {
    class: "p2p-aligner__chip p2p-focusable",
    text: chipLabel(t),
    type: "button",
    dataset: { side, pos: t.pos, segment },
  });
  if (t.special) {
    chip.classList.add("p2p-aligner__chip--special");
    chip.title = t.text;
  }
  chip.tabIndex = t.pos === v.active[rowKey(side, segment)] ? 0 : -1;
  chip.setAttribute("aria-describedby", v.help.id);
  return chip;
}

function wordNode(v, side, group) {
  const multi = group.tokens.length > 1;
  const wrap = v.el("span", { class: "p2p-aligner__word" });
  if (multi) {
    wrap.classList.add("p2p-aligner__word--multi");
    wrap.setAttribute("role", "group");
    wrap.setAttribute("aria-label", `word ${group.text}`);
    wrap.title = group.text;
  }
  for (const t of group.tokens) wrap.append(chipNode(v, side, t));
  if (multi) wrap.append(v.el("span", { class: "p2p-aligner__wordlabel", text: group.text }));
  return wrap;
}

function renderRow(v, side, segment) {
  const box = v.rows.boxes[rowKey(side, segment)];
  box.replaceChildren();
  const key = rowKey(side, segment);
  const shown = visibleTokens(v.tokens(side, segment), v.showSpecial());
  if (!shown.some((t) => t.pos === v.active[key])) v.active[key] = shown.length ? shown[0].pos : null;
  for (const group of groupWords(shown)) box.append(wordNode(v, side, group));
  if (!shown.length) box.append(v.el("span", { class: "p2p-aligner__none", text: "(no tokens)" }));
}

/** A pair of rows per token segment (rebuilt only when the segments change). */
function ensureRows(v) {
  const segments = v.segments();
  if (JSON.stringify(segments) === JSON.stringify(v.rows.segments)) return;
  for (const pair of v.stage.querySelectorAll(".p2p-aligner__pair")) pair.remove();
  const boxes = {};
  for (const segment of segments) {
    const { pair, chipBoxes } = segmentPair(v.el, segment);
    for (const side of SIDES) boxes[rowKey(side, segment)] = chipBoxes[side];
    v.stage.append(pair);
  }
  v.rows = { segments, boxes };
  v.stage.dataset.segments = String(segments.length);
  const named = segments.filter(Boolean);
  v.segmentHelp.hidden = named.length < 2;
  v.segmentHelp.textContent =
    named.length < 2
      ? ""
      : `This model reads the prompt as ${named.join(" and ")} tokens, a pair of rows each: link tokens within ` +
        "one pair (the mapper aligns each segment with its own tokens).";
}

/** Redraw every row of chips; a focused chip keeps the focus, a pick of a hidden chip is dropped. */
export function renderChips(v) {
  const active = v.doc.activeElement;
  const focused = active && v.root.contains(active) ? active : null;
  const refocus =
    focused && focused.classList.contains("p2p-aligner__chip")
      ? { side: focused.dataset.side, pos: Number(focused.dataset.pos) }
      : null;
  ensureRows(v);
  for (const segment of v.rows.segments) for (const side of SIDES) renderRow(v, side, segment);
  if (v.picked && !v.chipOf(v.picked.side, v.picked.pos)) v.picked = null;
  if (refocus) {
    const chip = v.chipOf(refocus.side, refocus.pos);
    if (chip) chip.focus();
  }
}

function targetState(v, chip, t, from) {
  const isNew = from.length === 0 && !(t && t.special);
  chip.classList.toggle("p2p-aligner__chip--linked", from.length > 0);
  chip.classList.toggle("p2p-aligner__chip--new", isNew);
  if (!t || !t.special) chip.title = isNew ? "new token: keeps its own attention" : "";
  if (from.length) return `fed by ${from.map(([i, w]) => `${v.nameOf("source", i)} ${formatWeight(w)}`).join(", ")}`;
  return isNew ? "new token, keeps its own attention" : "fed automatically";
}

/** Pressed/linked/new state and the accessible name of every chip, from the links. */
export function renderLinkState(v) {
  const current = v.links();
  const fedBy = new Map();
  for (const [i, j, w] of current) {
    if (!fedBy.has(j)) fedBy.set(j, []);
    fedBy.get(j).push([i, w]);
  }
  const usedSources = new Set(current.map((l) => l[0]));
  for (const side of SIDES) {
    for (const chip of v.visibleChips(side)) {
      const pos = Number(chip.dataset.pos);
      const t = v.tokenAt(side, pos);
      const isPicked = !!v.picked && v.picked.side === side && v.picked.pos === pos;
      chip.setAttribute("aria-pressed", String(isPicked));
      chip.classList.toggle("p2p-aligner__chip--picked", isPicked);
      let state;
      if (side === "source") {
        const linked = usedSources.has(pos);
        chip.classList.toggle("p2p-aligner__chip--linked", linked);
        state = linked ? "linked" : "not linked";
      } else {
        state = targetState(v, chip, t, fedBy.get(pos) || []);
      }
      const where = t && t.segment ? ` (${t.segment})` : "";
      chip.setAttribute("aria-label", `${side} token ${t ? chipLabel(t) : pos}${where}, position ${pos}, ${state}`);
    }
  }
}

/** Move the roving focus of a row to the chip at `pos`. */
export function focusChip(v, side, pos) {
  const chip = v.chipOf(side, pos);
  if (!chip) return;
  const segment = chip.dataset.segment || "";
  for (const c of v.visibleChips(side, segment)) c.tabIndex = -1;
  chip.tabIndex = 0;
  v.active[rowKey(side, segment)] = pos;
  chip.focus();
}

/** Click, Enter or Space on a chip: pick it, cancel the pick, or place the picked chip here. */
export function activate(v, side, pos) {
  if (v.picked && v.picked.side !== side && v.segmentOf(v.picked.side, v.picked.pos) !== v.segmentOf(side, pos)) {
    // another segment's chip: the pick stays, to be placed on a chip of its own pair of rows
    v.announcer.announce(
      `${v.nameOf(v.picked.side, v.picked.pos)} links to ${other(v.picked.side)} tokens of ` +
        `${v.segmentOf(v.picked.side, v.picked.pos)} only; choose one in its pair of rows, or Escape to cancel`
    );
    return;
  }
  if (v.picked && v.picked.side !== side) {
    const from = v.picked;
    v.picked = null;
    v.link(from.side, from.pos, pos);
    renderLinkState(v);
    return;
  }
  if (v.picked && v.picked.side === side && v.picked.pos === pos) {
    v.picked = null;
    v.announcer.announce("pick cancelled");
  } else {
    v.picked = { side, pos };
    v.announcer.announce(
      `picked ${side} token ${v.nameOf(side, pos)}; now choose a ${other(side)} token and press Enter, or Escape to cancel`
    );
  }
  renderLinkState(v);
}
