// The explorer's controls, shown from the model and committed on change: the x / y / colour
// pickers, the cell size, one filter per other column with more than one value, the legend,
// the summary and the status line. Python validates every write.
import { formatValue, gradientCss } from "./colors.js";
import { axisOptions } from "./layout.js";

/** @typedef {import("./view.js").View} View */

const MEAN = "mean";

/** @param {View} v */
export function showPickers(v) {
  const axes = v.model.get("axes") || [];
  axisOptions(v.el, v.xSelect, axes);
  axisOptions(v.el, v.ySelect, axes);
  const metrics = (v.model.get("metrics") || []).map((m) => ({ name: m.name, label: m.name }));
  axisOptions(v.el, v.metricSelect, metrics);
  v.xSelect.value = v.model.get("x");
  v.ySelect.value = v.model.get("y");
  v.metricSelect.value = v.model.get("metric");
  v.metricSelect.disabled = metrics.length === 0;
  v.sizeInput.value = String(v.model.get("cell_size") || 96);
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** One <select> per column that is neither x nor y and has more than one value. @param {View} v */
export function showFilters(v) {
  const filters = v.model.get("filters") || {};
  const [x, y] = [v.model.get("x"), v.model.get("y")];
  const shown = (v.model.get("axes") || []).filter((a) => a.name !== x && a.name !== y && a.values.length > 1);
  const parts = shown.map((axis) => {
    const current = filters[axis.name];
    const options = [[MEAN, "mean of all"], ...axis.labels.map((text, k) => [String(k), text])];
    const select = v.el(
      "select",
      { class: "p2p-btn p2p-sweep__filter", dataset: { column: axis.name }, "aria-label": `${axis.label} shown` },
      options.map(([value, text]) => v.el("option", { value, text }))
    );
    const k = axis.values.findIndex((val) => same(val, current));
    select.value = k >= 0 ? String(k) : MEAN;
    return v.el("label", {}, [`${axis.label} `, select]);
  });
  v.filters.replaceChildren(...parts);
  v.filters.hidden = parts.length === 0;
}

/** @param {View} v */
export function showLegend(v) {
  const metric = v.model.get("metric");
  const s = v.scale;
  v.name.textContent = metric || "no metric";
  v.bar.style.background = gradientCss();
  v.worse.textContent = formatValue(s.worse);
  v.best.textContent = formatValue(s.best);
  v.note.textContent = metric ? `(${s.better} is better; bright = better)` : "";
  v.legend.hidden = !metric;
}

/** @param {View} v */
export function showSummary(v) {
  const grid = v.grid();
  const parts = [`${v.model.get("n_rows") || 0} rows`, `${grid.ys.length} × ${grid.xs.length} cells`];
  if (grid.averaged.length) parts.push(`mean over ${grid.averaged.join(", ")}`);
  for (const [name, value] of grid.fixed) parts.push(`${name} = ${value}`);
  v.summary.textContent = parts.join(" · ");
  v.status.textContent = v.model.get("status") || "";
}

function onAxis(v, which) {
  const other = which === "x" ? "y" : "x";
  const value = (which === "x" ? v.xSelect : v.ySelect).value;
  // picking the other axis's column swaps the two
  if (value === v.model.get(other)) v.commit({ [which]: value, [other]: v.model.get(which) });
  else v.commit({ [which]: value });
}

function onFilter(v, select) {
  const column = select.dataset.column;
  const axis = (v.model.get("axes") || []).find((a) => a.name === column);
  if (!axis) return;
  const value = select.value === MEAN ? MEAN : axis.values[Number(select.value)];
  v.commit({ filters: { ...(v.model.get("filters") || {}), [column]: value } });
}

/**
 * @param {View} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachControls(v, scope) {
  scope.on(v.xSelect, "change", () => onAxis(v, "x"));
  scope.on(v.ySelect, "change", () => onAxis(v, "y"));
  scope.on(v.metricSelect, "change", () => v.commit({ metric: v.metricSelect.value }));
  scope.on(v.sizeInput, "change", () => v.commit({ cell_size: Number(v.sizeInput.value) }));
  scope.on(v.filters, "change", (e) => {
    if (e.target && e.target.tagName === "SELECT") onFilter(v, e.target);
  });
}
