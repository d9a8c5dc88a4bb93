// Pointer and keyboard on the cells: hovering or focusing a cell shows its numbers in the
// tooltip; clicking it (or Enter / Space on it) asks Python to open its row.
import { cellLines } from "./tooltip.js";

/** @typedef {import("./view.js").View} View */

function cellOf(v, target) {
  const node = target instanceof v.win.Element ? target.closest(".p2p-sweep__cell") : null;
  if (!node || !v.cells.contains(node)) return null;
  const cell = v.geo ? v.byIndex.get(Number(node.dataset.j) * v.geo.nx + Number(node.dataset.i)) : null;
  return cell ? { node, cell } : null;
}

/** Fill the tooltip with the cell's lines and put it beside the cell. @param {View} v */
export function showTip(v, node, cell) {
  const metrics = v.model.get("metrics") || [];
  const lines = cellLines(v.grid(), cell, metrics, v.model.get("metric"), v.label);
  v.tip.replaceChildren(
    ...lines.map(([label, text]) =>
      v.el("div", { class: "p2p-sweep__tip-line" }, [
        v.el("span", { class: "p2p-sweep__tip-label", text: label }),
        v.el("span", { class: "p2p-sweep__tip-value", text }),
      ])
    ),
    v.el("div", { class: "p2p-sweep__tip-hint", text: "click: open this edit in the Studio" })
  );
  v.tip.dataset.row = String(cell.row);
  v.tip.hidden = false;
  const box = node.getBoundingClientRect();
  const root = v.root.getBoundingClientRect();
  const width = v.tip.offsetWidth || 240;
  const right = box.right - root.left + 8;
  const left = right + width > root.width ? Math.max(0, box.left - root.left - width - 8) : right;
  v.tip.style.left = `${left}px`;
  v.tip.style.top = `${Math.max(0, box.top - root.top)}px`;
}

export function hideTip(v) {
  v.tip.hidden = true;
  delete v.tip.dataset.row;
}

/**
 * @param {View} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachHover(v, scope) {
  scope.on(v.cells, "pointerover", (e) => {
    const hit = cellOf(v, e.target);
    if (hit) showTip(v, hit.node, hit.cell);
  });
  scope.on(v.scroll, "pointerleave", () => hideTip(v));
  scope.on(v.cells, "focusin", (e) => {
    const hit = cellOf(v, e.target);
    if (hit) showTip(v, hit.node, hit.cell);
  });
  scope.on(v.cells, "focusout", () => hideTip(v));
  scope.on(v.cells, "click", (e) => {
    const hit = cellOf(v, e.target);
    if (!hit) return;
    v.model.send({ type: "open", row: hit.cell.row });
    v.status.textContent = `opening row ${hit.cell.row}…`;
  });
}
