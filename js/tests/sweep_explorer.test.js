// The SweepExplorer's pure parts: grid geometry and the visible window, the colour scale and
// number format, the tooltip lines, and the per-model thumbnail store.
import { describe, expect, it } from "vitest";
import { colorAt, colorScale, formatValue, gradientCss } from "../src/sweep_explorer/colors.js";
import { cellBox, cellsIn, gridGeometry, indexCells, inRange, visibleRange } from "../src/sweep_explorer/geometry.js";
import { BATCH, createThumbs } from "../src/sweep_explorer/thumbs.js";
import { cellLines, cellName } from "../src/sweep_explorer/tooltip.js";
import { FakeModel } from "./fake-model.js";

describe("grid geometry", () => {
  it("places cells on a pitch of size + gap and sizes the board without a trailing gap", () => {
    const g = gridGeometry(3, 2, 96, 4);
    expect([g.pitch, g.width, g.height]).toEqual([100, 296, 196]);
    expect(cellBox(g, 2, 1)).toEqual({ left: 200, top: 100, size: 96 });
    expect(gridGeometry(0, 0, 96, 4)).toMatchObject({ width: 0, height: 0 });
    expect(() => gridGeometry(3, -1, 96)).toThrow(/ny/);
  });

  it("keeps only the cells a scrolled viewport shows, plus the margin", () => {
    const g = gridGeometry(100, 80, 30, 2); // pitch 32
    const r = visibleRange(g, { left: 320, top: 640, width: 200, height: 100 }, 0);
    // columns 10 .. ceil(520 / 32) = 17, rows 20 .. ceil(740 / 32) = 24
    expect(r).toEqual({ i0: 10, i1: 17, j0: 20, j1: 24 });
    const m = visibleRange(g, { left: 320, top: 640, width: 200, height: 100 }, 2);
    expect(m).toEqual({ i0: 8, i1: 19, j0: 18, j1: 26 });
    expect(inRange(m, 8, 18) && !inRange(m, 19, 18) && !inRange(m, 8, 26)).toBe(true);
    // the window never leaves the grid, at either end
    expect(visibleRange(g, { left: -50, top: 0, width: 1e6, height: 10 }, 3)).toEqual({ i0: 0, i1: 100, j0: 0, j1: 4 });
    expect(visibleRange(g, { left: 1e6, top: 1e6, width: 100, height: 100 }, 1)).toEqual({ i0: 100, i1: 100, j0: 80, j1: 80 });
  });

  it("finds the existing cells of a window row by row, and refuses a cell outside the grid", () => {
    const cells = [
      { i: 0, j: 0, row: 5 },
      { i: 2, j: 0, row: 7 },
      { i: 1, j: 1, row: 9 },
    ];
    const g = gridGeometry(3, 2, 10, 0);
    const byIndex = indexCells(cells, 3, 2);
    expect(cellsIn(byIndex, g, { i0: 0, i1: 3, j0: 0, j1: 2 }).map((c) => c.row)).toEqual([5, 7, 9]);
    expect(cellsIn(byIndex, g, { i0: 1, i1: 3, j0: 0, j1: 1 }).map((c) => c.row)).toEqual([7]);
    expect(() => indexCells([{ i: 3, j: 0 }], 3, 2)).toThrow(/outside the 3 x 2 grid/);
  });
});

describe("colour scale", () => {
  it("runs viridis from its dark end to its bright end and clamps", () => {
    expect(colorAt(0)).toEqual([68, 1, 84]);
    expect(colorAt(1)).toEqual([253, 231, 37]);
    expect(colorAt(2)).toEqual(colorAt(1));
    expect(colorAt(-1)).toEqual(colorAt(0));
    // halfway between the 5th and 6th stops (t = 4.5 / 8)
    expect(colorAt(4.5 / 8)).toEqual([36, 159, 135]);
    expect(gradientCss()).toMatch(/^linear-gradient\(to right, rgb\(68, 1, 84\) 0\.0%.*rgb\(253, 231, 37\) 100\.0%\)$/);
  });

  it("puts the better end of a metric at the bright end, and skips missing values", () => {
    const up = colorScale([10, null, 30, NaN, 20], "higher");
    expect([up.min, up.max, up.worse, up.best]).toEqual([10, 30, 10, 30]);
    expect([up.t(10), up.t(20), up.t(30), up.t(null)]).toEqual([0, 0.5, 1, null]);
    expect(up.color(30)).toBe("rgb(253, 231, 37)");
    expect(up.color(NaN)).toBeNull();
    const down = colorScale([0.01, 0.03], "lower");
    expect([down.worse, down.best, down.t(0.01), down.t(0.03)]).toEqual([0.03, 0.01, 1, 0]);
    const flat = colorScale([4, 4], "higher");
    expect(flat.t(4)).toBe(0.5);
    expect(colorScale([], "higher").color(1)).toBeNull();
  });

  it("writes numbers with four significant digits", () => {
    expect([formatValue(27.0349), formatValue(0.013443), formatValue(0), formatValue(null), formatValue(NaN)]).toEqual([
      "27.03",
      "0.01344",
      "0",
      "n/a",
      "n/a",
    ]);
    expect([formatValue(0.00012), formatValue(123456)]).toEqual(["1.20e-4", "1.23e+5"]);
  });
});

const GRID = {
  x: "p.cross",
  y: "seed",
  xs: ["0.2", "0.4"],
  ys: ["0", "1"],
  averaged: ["case"],
  fixed: [["method", "p2p"]],
  cells: [],
};
const METRICS = [{ name: "psnr" }, { name: "structure_distance" }];
const label = (c) => ({ "p.cross": "cross", seed: "seed" })[c] || c;

describe("tooltip", () => {
  it("says where the cell is, every metric (the coloured one first) and which row it opens", () => {
    const cell = { i: 1, j: 0, row: 3, n: 2, errors: 1, error: "", case: "pb-1", seed: "0", method: "p2p",
      setting: "cross=0.4", values: [27.0349, 0.0134], spreads: [0.5, null] };
    expect(cellLines(GRID, cell, METRICS, "structure_distance", label)).toEqual([
      ["cross", "0.4"],
      ["seed", "0"],
      ["method", "p2p"],
      ["mean of", "2 rows (over case, 1 failed)"],
      ["structure_distance", "0.0134"],
      ["psnr", "27.03 ± 0.5"],
      ["image", "case pb-1, seed 0"],
      ["method", "p2p"],
      ["setting", "cross=0.4"],
    ]);
    expect(cellName(GRID, cell, METRICS, "psnr", label)).toBe("cross 0.4, seed 0, psnr 27.03");
  });

  it("shows a failed run's error", () => {
    const cell = { i: 0, j: 1, row: 0, n: 1, errors: 1, error: "out of memory", case: "c", seed: "1", method: "m",
      setting: "", values: [null, null], spreads: [null, null] };
    const lines = cellLines(GRID, cell, METRICS, "psnr", label);
    expect(lines).toContainEqual(["status", "failed"]);
    expect(lines).toContainEqual(["psnr", "n/a"]);
    expect(lines.at(-1)).toEqual(["error", "out of memory"]);
  });
});

function fakeEnv() {
  const made = [];
  const revoked = [];
  return {
    made,
    revoked,
    Blob,
    URL: {
      createObjectURL: (blob) => {
        made.push(blob);
        return `blob:${made.length}`;
      },
      revokeObjectURL: (url) => revoked.push(url),
    },
  };
}

describe("thumbnail store", () => {
  it("asks for rows once, in batches, for the model's version", () => {
    const model = new FakeModel({ version: 3 });
    const thumbs = createThumbs(fakeEnv());
    thumbs.listen(model);
    const rows = Array.from({ length: BATCH + 6 }, (_, k) => k);
    expect(thumbs.want([...rows, 0, 1])).toBe(BATCH + 6);
    expect(model.sent.map((m) => m.content.rows.length)).toEqual([BATCH, 6]);
    expect(model.sent.every((m) => m.content.type === "thumbs" && m.content.version === 3)).toBe(true);
    expect(thumbs.want(rows)).toBe(0); // asked already: nothing more is sent
    expect(model.sent.length).toBe(2);
  });

  it("keeps PNG buffers as object URLs, notes rows without an image, and ignores another version", async () => {
    const env = fakeEnv();
    const model = new FakeModel({ version: 1 });
    const thumbs = createThumbs(env);
    const stop = thumbs.listen(model);
    const seen = [];
    thumbs.subscribe((rows) => seen.push([...rows]));
    thumbs.want([4, 5, 6]);
    model.receive({ type: "thumbs", version: 0, rows: [4], missing: [] }, [Uint8Array.from([1])]);
    expect(thumbs.get(4)).toBeUndefined();
    model.receive({ type: "thumbs", version: 1, rows: [4, 6], missing: [5] }, [Uint8Array.from([137, 80]), Uint8Array.from([9])]);
    expect([thumbs.get(4), thumbs.get(5), thumbs.get(6)]).toEqual(["blob:1", null, "blob:2"]);
    expect(new Uint8Array(await env.made[0].arrayBuffer())).toEqual(Uint8Array.from([137, 80]));
    expect(env.made[0].type).toBe("image/png");
    expect(seen).toEqual([[4, 6, 5]]);
    // a new version drops every URL; the rows are asked for again
    model.set("version", 2);
    expect(env.revoked).toEqual(["blob:1", "blob:2"]);
    expect(thumbs.get(4)).toBeUndefined();
    expect(thumbs.want([4])).toBe(1);
    stop();
    expect(model.listenerCount()).toBe(0);
  });

  it("reports a reply whose buffers do not match its rows", () => {
    const model = new FakeModel({ version: 0 });
    const thumbs = createThumbs(fakeEnv());
    thumbs.listen(model);
    model.receive({ type: "thumbs", version: 0, rows: [1, 2], missing: [] }, [Uint8Array.from([1])]);
    expect(model.sent).toEqual([{ content: { type: "client_error", message: "thumbs: 2 rows but 1 buffers" }, buffers: [] }]);
    expect(thumbs.get(1)).toBeUndefined();
  });
});
