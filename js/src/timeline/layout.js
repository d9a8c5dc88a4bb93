// The timeline's fixed parts: header, presets, the grid the rows are drawn into, the word adder.
import { button } from "../../lib/dom.js";

const PRESETS = [
  ["default", "P2P default (cross 0.8, self 0.4)"],
  ["source_only", "Source only"],
  ["no_injection", "No injection"],
];

const HELP =
  "Each bar is the window [start, end) of evaluations in which the edit takes the source's attention; " +
  "time runs left to right from the noisiest step. Drag an edge (it snaps to steps) or focus it and use the " +
  "arrow keys, Page Up/Down, Home and End.";

/** @param {import("../../lib/dom.js").Builder} el */
export function layout(el) {
  const promptText = el("span", { class: "p2p-timeline__prompt" });
  const header = el("div", { class: "p2p-timeline__header" }, [
    el("span", { class: "p2p-timeline__title", text: "Alpha timeline for" }),
    promptText,
  ]);
  const presets = el(
    "div",
    { class: "p2p-timeline__presets", role: "group", "aria-label": "presets" },
    PRESETS.map(([name, label]) => button(el, "p2p-timeline__preset", label, { dataset: { preset: name } }))
  );
  const grid = el("div", { class: "p2p-timeline__grid" });
  const wordSelect = el("select", { class: "p2p-timeline__word p2p-focusable", "aria-label": "word of the target prompt" });
  const addButton = button(el, "p2p-timeline__add", "Add word row");
  const adder = el("div", { class: "p2p-timeline__adder" }, [
    el("span", { text: "Override a word:" }),
    wordSelect,
    addButton,
  ]);
  const help = el("p", { class: "p2p-timeline__help", text: HELP });
  const root = el("div", { class: "p2p-timeline p2p-root", "data-lm-suppress-shortcuts": "true" }, [
    header,
    presets,
    grid,
    adder,
    help,
  ]);
  return { root, promptText, grid, wordSelect, addButton };
}
