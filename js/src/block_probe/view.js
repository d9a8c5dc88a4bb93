// The block probe's view: a header (what the scores measure, progress), one row of bars per block
// kind, a readout of the hovered or focused bar, the selection and a Clear button. Bars are buttons
// (click, Enter or Space toggles one); the view writes only `selected`.
import { mountErrorBanner } from "../../lib/error_banner.js";
import { button } from "../../lib/dom.js";
import { mountView } from "../../lib/mount.js";
import { barHeights, describeBlock, groupBlocks, selectionText, toggleIndex } from "./bars.js";

const IDLE_READOUT = "hover a bar for its block and score";

function layout(el) {
  const metric = el("div", { class: "p2p-block-probe__metric" });
  const status = el("div", { class: "p2p-block-probe__status", "aria-live": "polite" });
  const groups = el("div", { class: "p2p-block-probe__groups" });
  const readout = el("div", { class: "p2p-block-probe__readout", "aria-live": "polite", text: IDLE_READOUT });
  const selection = el("span", { class: "p2p-block-probe__selection" });
  const clear = button(el, "p2p-block-probe__clear", "Clear");
  const footer = el("div", { class: "p2p-block-probe__footer" }, [selection, clear]);
  const root = el("div", { class: "p2p-block-probe p2p-root" }, [metric, status, groups, readout, footer]);
  return { root, metric, status, groups, readout, selection, clear };
}

function buildBars(el, ui, blocks) {
  const heights = barHeights(blocks);
  const bars = [];
  ui.groups.replaceChildren();
  if (!blocks.length) ui.groups.append(el("div", { class: "p2p-block-probe__empty", text: "no probe result yet" }));
  for (const group of groupBlocks(blocks)) {
    const row = el("div", { class: "p2p-block-probe__bars", role: "group", "aria-label": group.title });
    for (const block of group.items) {
      const fill = el("span", { class: "p2p-block-probe__fill", style: { height: `${(100 * heights[block.index]).toFixed(2)}%` } });
      const bar = el("button", { class: "p2p-block-probe__bar", type: "button", dataset: { index: block.index, label: block.label } }, [fill]);
      bars[block.index] = bar;
      row.append(bar);
    }
    ui.groups.append(el("div", { class: "p2p-block-probe__group" }, [el("div", { class: "p2p-block-probe__title", text: group.title }), row]));
  }
  return bars;
}

/**
 * @param {{ model: import("../../lib/types.js").Model<any>, el: HTMLElement }} args
 */
export function renderBlockProbe({ model, el: host }) {
  const { el, ui, scope } = mountView(host, layout);
  let bars = [];
  let hovered = -1;

  const blocks = () => model.get("blocks") || [];
  const selected = () => model.get("selected") || [];
  const showReadout = () => {
    const b = blocks()[hovered];
    ui.readout.textContent = b ? describeBlock(b, selected().includes(hovered)) : IDLE_READOUT;
  };
  const showSelection = () => {
    const chosen = new Set(selected());
    bars.forEach((bar, i) => {
      if (!bar) return;
      const on = chosen.has(i);
      bar.classList.toggle("p2p-block-probe__bar--selected", on);
      bar.setAttribute("aria-pressed", String(on));
      bar.setAttribute("aria-label", describeBlock(blocks()[i], on));
    });
    ui.selection.textContent = selectionText(blocks(), selected());
    ui.clear.disabled = chosen.size === 0;
    showReadout();
  };
  const showBlocks = () => {
    bars = buildBars(el, ui, blocks());
    hovered = -1;
    showSelection();
  };
  const showText = () => {
    const metric = model.get("metric") || "";
    ui.metric.textContent = metric ? `score: ${metric} (how much skipping the block changes the image)` : "";
    ui.status.textContent = model.get("status") || "";
  };
  const write = (next) => {
    model.set("selected", next);
    model.save_changes();
  };
  const barOf = (event) => {
    const bar = event.target && event.target.closest ? event.target.closest(".p2p-block-probe__bar") : null;
    return bar && ui.groups.contains(bar) ? Number(bar.dataset.index) : -1;
  };
  const point = (event) => {
    const i = barOf(event);
    if (i !== hovered) {
      hovered = i;
      showReadout();
    }
  };

  showText();
  showBlocks();
  scope.onModel(model, "change:blocks", showBlocks);
  scope.onModel(model, "change:selected", showSelection);
  scope.onModel(model, ["change:metric", "change:status"], showText);
  scope.on(ui.groups, "click", (event) => {
    const i = barOf(event);
    if (i >= 0) write(toggleIndex(selected(), i));
  });
  scope.on(ui.groups, "mouseover", point);
  scope.on(ui.groups, "focusin", point);
  scope.on(ui.groups, "mouseleave", () => point({ target: null }));
  scope.on(ui.clear, "click", () => write([]));
  scope.add(mountErrorBanner(model, ui.root));
  return () => scope.dispose();
}
