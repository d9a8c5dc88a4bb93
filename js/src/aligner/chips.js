// The two rows of token chips: drawing them (grouped by word, roving tabindex), their link state
// (pressed, linked, new, accessible names), focus moves, and pick-then-place.
import { chipLabel, formatWeight, groupWords, visibleTokens } from "../../lib/alignment.js";
import { SIDES } from "./layout.js";
import { other } from "./view.js";

/** @typedef {import("./view.js").AlignerView} AlignerView */

function chipNode(v, side, t) {
  const chip = v.el("button", {
    class: "p2p-aligner__chip p2p-focusable",
    text: chipLabel(t),
    type: "button",
    dataset: { side, pos: t.pos },
  });
  if (t.special) {
    chip.classList.add("p2p-aligner__chip--special");
    chip.title = t.text;
  }
  chip.tabIndex = t.pos === v.active[side] ? 0 : -1;
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

function renderRow(v, side) {
  const box = v.chipBoxes[side];
  box.replaceChildren();
  const shown = visibleTokens(v.tokens(side), v.showSpecial());
  if (!shown.some((t) => t.pos === v.active[side])) v.active[side] = shown.length ? shown[0].pos : null;
  for (const group of groupWords(shown)) box.append(wordNode(v, side, group));
  if (!shown.length) box.append(v.el("span", { class: "p2p-aligner__none", text: "(no tokens)" }));
}

/** Redraw both rows of chips; a focused chip keeps the focus, a pick of a hidden chip is dropped. */
export function renderChips(v) {
  const active = v.doc.activeElement;
  const focused = active && v.root.contains(active) ? active : null;
  const refocus =
    focused && focused.classList.contains("p2p-aligner__chip")
      ? { side: focused.dataset.side, pos: Number(focused.dataset.pos) }
      : null;
  for (const side of SIDES) renderRow(v, side);
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
      chip.setAttribute("aria-label", `${side} token ${t ? chipLabel(t) : pos}, position ${pos}, ${state}`);
    }
  }
}

/** Move the roving focus of a row to the chip at `pos`. */
export function focusChip(v, side, pos) {
  const chip = v.chipOf(side, pos);
  if (!chip) return;
  for (const c of v.visibleChips(side)) c.tabIndex = -1;
  chip.tabIndex = 0;
  v.active[side] = pos;
  chip.focus();
}

/** Click, Enter or Space on a chip: pick it, cancel the pick, or place the picked chip here. */
export function activate(v, side, pos) {
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
