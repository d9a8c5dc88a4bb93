// @vitest-environment happy-dom
// The SweepExplorer view on a fake model: the grid it builds (only the viewport's cells), the
// colours, the pickers and filters it commits, the open message of a click, and its cleanup.
import { afterEach, describe, expect, it } from "vitest";
import * as explorerModule from "../src/sweep_explorer.js";
import { FakeModel, instantiate } from "./fake-model.js";

const mounted = [];

function grid(nx, ny, { holes = [] } = {}) {
  const cells = [];
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      if (holes.some(([hi, hj]) => hi === i && hj === j)) continue;
      cells.push({ i, j, row: j * nx + i, n: 1, errors: 0, error: "", case: "c0", seed: String(j), method: "p2p",
        setting: `cross=${i}`, values: [i + j, 10 * i], spreads: [null, null] });
    }
  }
  return { x: "p.cross", y: "seed", xs: Array.from({ length: nx }, (_, i) => `x${i}`),
    ys: Array.from({ length: ny }, (_, j) => `y${j}`), averaged: [], fixed: [], cells };
}

function state(extra = {}) {
  return {
    axes: [
      { name: "p.cross", label: "cross", values: [0.2, 0.4], labels: ["0.2", "0.4"] },
      { name: "seed", label: "seed", values: [0, 1], labels: ["0", "1"] },
      { name: "case_id", label: "case", values: ["a", "b", "c"], labels: ["a", "b", "c"] },
      { name: "method", label: "method", values: ["p2p"], labels: ["p2p"] },
    ],
    metrics: [{ name: "psnr", better: "higher" }, { name: "lpips", better: "lower" }],
    n_rows: 12, version: 0, grid: grid(2, 2, { holes: [[1, 1]] }), selected: -1, status: "",
    x: "p.cross", y: "seed", metric: "psnr", filters: { case_id: "b", method: "p2p" }, cell_size: 96, ...extra,
  };
}

async function mount(extra = {}) {
  const widget = await instantiate(explorerModule);
  const model = new FakeModel(state(extra));
  const stopInit = widget.initialize({ model });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const stopRender = widget.render({ model, el });
  mounted.push(el);
  return { model, el, stopInit, stopRender };
}

afterEach(() => {
  for (const el of mounted.splice(0)) el.remove();
});

const cells = (el) => [...el.querySelectorAll(".p2p-sweep__cell")];

describe("sweep explorer view", () => {
  it("builds one button per cell of the grid, coloured by the metric, and asks for their thumbnails", async () => {
    const { el, model } = await mount();
    const built = cells(el);
    expect(built.map((c) => c.dataset.row)).toEqual(["0", "1", "2"]); // (1, 1) is a hole
    expect(built.map((c) => [c.style.left, c.style.top])).toEqual([["0px", "0px"], ["100px", "0px"], ["0px", "100px"]]);
    // psnr 0, 1, 1 over the cells: the lowest is viridis' dark end, the highest its bright end
    expect(built.map((c) => c.style.getPropertyValue("--p2p-sweep-color"))).toEqual([
      "rgb(68, 1, 84)",
      "rgb(253, 231, 37)",
      "rgb(253, 231, 37)",
    ]);
    expect(model.sent).toEqual([{ content: { type: "thumbs", version: 0, rows: [0, 1, 2] }, buffers: [] }]);
    expect(el.querySelector(".p2p-sweep__summary").textContent).toBe("12 rows · 2 × 2 cells");
    expect([...el.querySelectorAll(".p2p-sweep__cols .p2p-sweep__label")].map((n) => n.textContent)).toEqual(["x0", "x1"]);
    expect(el.querySelector(".p2p-sweep__best").textContent).toBe("1");
  });

  it("recolours for another metric with its better end bright", async () => {
    const { el, model } = await mount();
    model.set("metric", "lpips"); // values 0, 10, 0: lower is better, so 0 is bright
    expect(cells(el).map((c) => c.style.getPropertyValue("--p2p-sweep-color"))).toEqual([
      "rgb(253, 231, 37)",
      "rgb(68, 1, 84)",
      "rgb(253, 231, 37)",
    ]);
    expect(el.querySelector(".p2p-sweep__worse").textContent).toBe("10");
    expect(el.querySelector(".p2p-sweep__legend-note").textContent).toMatch(/lower is better/);
  });

  it("shows a thumbnail when its PNG arrives, and 'no image' for a row without one", async () => {
    const { el, model } = await mount();
    model.receive({ type: "thumbs", version: 0, rows: [0], missing: [2] }, [Uint8Array.from([137, 80, 78, 71])]);
    const [a, b, c] = cells(el);
    expect(a.querySelector("img.p2p-sweep__thumb").getAttribute("src")).toMatch(/^blob:/);
    expect(b.textContent).toBe("…");
    expect(c.textContent).toBe("no image");
  });

  it("builds only the cells of the viewport for a large grid", async () => {
    const { el, model } = await mount({ grid: grid(200, 150), cell_size: 24 });
    const n = cells(el).length;
    // happy-dom has no layout: a 640 x 480 view at the top left, 24 px cells 2 px apart, and 2
    // more cells past the right and bottom edges
    const pitch = 24 + 2;
    expect(n).toBe((Math.ceil(640 / pitch) + 2) * (Math.ceil(480 / pitch) + 2));
    expect(n).toBeLessThan(200 * 150);
    expect(el.querySelector(".p2p-sweep").dataset.cells).toBe(String(200 * 150));
    const asked = model.sent.flatMap((m) => m.content.rows);
    expect(asked.length).toBe(n);
    expect(model.sent.every((m) => m.content.rows.length <= 64)).toBe(true);
  });

  it("commits the pickers, swaps x and y when one takes the other's column, and commits filters", async () => {
    const { el, model } = await mount();
    const x = el.querySelector(".p2p-sweep__x");
    x.value = "case_id";
    x.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("x")).toBe("case_id");
    x.value = "seed";
    x.dispatchEvent(new Event("change", { bubbles: true }));
    expect([model.get("x"), model.get("y")]).toEqual(["seed", "case_id"]);
    const filter = el.querySelector(".p2p-sweep__filter[data-column='p.cross']");
    expect([...filter.options].map((o) => o.textContent)).toEqual(["mean of all", "0.2", "0.4"]);
    filter.value = "1";
    filter.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.get("filters")).toEqual({ case_id: "b", method: "p2p", "p.cross": 0.4 });
    expect(model.saves).toBe(3);
    // single-valued columns get no filter
    expect(el.querySelector(".p2p-sweep__filter[data-column='method']")).toBeNull();
  });

  it("shows the current filter values, 'mean' included", async () => {
    const { el } = await mount({ x: "p.cross", y: "method", filters: { case_id: "c", seed: "mean" } });
    expect(el.querySelector(".p2p-sweep__filter[data-column='case_id']").value).toBe("2");
    expect(el.querySelector(".p2p-sweep__filter[data-column='seed']").value).toBe("mean");
  });

  it("shows a cell's numbers on hover and sends its row on click", async () => {
    const { el, model } = await mount();
    const cell = cells(el)[1];
    cell.dispatchEvent(new Event("pointerover", { bubbles: true }));
    const tip = el.querySelector(".p2p-sweep__tip");
    expect(tip.hidden).toBe(false);
    expect(tip.dataset.row).toBe("1");
    const lines = [...tip.querySelectorAll(".p2p-sweep__tip-line")].map((n) => n.textContent);
    expect(lines).toContain("psnr1");
    expect(lines).toContain("lpips10");
    cell.click();
    expect(model.sent.at(-1)).toEqual({ content: { type: "open", row: 1 }, buffers: [] });
  });

  it("keeps prompt-like text as text", async () => {
    const g = grid(1, 1);
    g.xs = ["<img src=x onerror=alert(1)>"];
    g.cells[0].setting = "<b>bold</b>";
    const { el } = await mount({ grid: g });
    cells(el)[0].dispatchEvent(new Event("pointerover", { bubbles: true }));
    expect(el.querySelector(".p2p-sweep img:not(.p2p-sweep__thumb), .p2p-sweep b")).toBeNull();
    expect(el.querySelector(".p2p-sweep__tip").textContent).toContain("<b>bold</b>");
  });

  it("marks the selected row and follows a new grid from Python", async () => {
    const { el, model } = await mount();
    model.set("selected", 2);
    expect(cells(el).filter((c) => c.classList.contains("is-selected")).map((c) => c.dataset.row)).toEqual(["2"]);
    model.set("grid", grid(3, 1));
    expect(cells(el).map((c) => c.dataset.row)).toEqual(["0", "1", "2"]);
    expect(el.querySelector(".p2p-sweep__summary").textContent).toBe("12 rows · 1 × 3 cells");
  });

  it("removes its DOM and every model listener when closed", async () => {
    const { el, model, stopInit, stopRender } = await mount();
    stopRender();
    stopInit();
    expect(el.querySelector(".p2p-sweep")).toBeNull();
    expect(model.listenerCount()).toBe(0);
  });
});
