import { describe, expect, it } from "vitest";
import {
  addWordRow,
  boundaryToPercent,
  cloneWindows,
  describeBoundary,
  keyToBoundary,
  moveEdge,
  pxToBoundary,
  removeWordRow,
  tickIndices,
  withWindow,
} from "../lib/timeline.js";

const W = { cross: [0, 40], self_attn: [0, 20], words: [["cat", 0, 10]], blend_start: 10 };

describe("snapping", () => {
  it("snaps pixels to the nearest step boundary and clamps", () => {
    expect(pxToBoundary(0, 500, 50)).toBe(0);
    expect(pxToBoundary(500, 500, 50)).toBe(50);
    expect(pxToBoundary(204, 500, 50)).toBe(20);
    expect(pxToBoundary(206, 500, 50)).toBe(21);
    expect(pxToBoundary(-30, 500, 50)).toBe(0);
    expect(pxToBoundary(900, 500, 50)).toBe(50);
    expect(pxToBoundary(10, 0, 50)).toBe(0);
    expect(pxToBoundary(Number.NaN, 500, 50)).toBe(0);
  });

  it("maps boundaries to percentages", () => {
    expect(boundaryToPercent(25, 50)).toBe(50);
    expect(boundaryToPercent(3, 0)).toBe(0);
  });
});

describe("moving edges", () => {
  it("never lets start pass end, or leave [0, n]", () => {
    expect(moveEdge([10, 20], "start", 15, 50)).toEqual([15, 20]);
    expect(moveEdge([10, 20], "start", 30, 50)).toEqual([20, 20]);
    expect(moveEdge([10, 20], "end", 5, 50)).toEqual([10, 10]);
    expect(moveEdge([10, 20], "end", 80, 50)).toEqual([10, 50]);
    expect(moveEdge([10, 20], "start", -4, 50)).toEqual([0, 20]);
    expect(moveEdge([10, 20], "end", 33.6, 50)).toEqual([10, 34]);
  });

  it("maps keys to boundaries", () => {
    expect(keyToBoundary("ArrowRight", 10, 50)).toBe(11);
    expect(keyToBoundary("ArrowLeft", 0, 50)).toBe(0);
    expect(keyToBoundary("ArrowUp", 50, 50)).toBe(50);
    expect(keyToBoundary("PageUp", 10, 50)).toBe(15);
    expect(keyToBoundary("PageDown", 3, 50)).toBe(0);
    expect(keyToBoundary("Home", 10, 50)).toBe(0);
    expect(keyToBoundary("End", 10, 50)).toBe(50);
    expect(keyToBoundary("a", 10, 50)).toBeNull();
  });
});

describe("ticks and text", () => {
  it("labels about ten evaluations including the first and the last", () => {
    const ticks = tickIndices(50, 10);
    expect(ticks[0]).toBe(0);
    expect(ticks[ticks.length - 1]).toBe(49);
    expect(ticks.length).toBeLessThanOrEqual(11);
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(tickIndices(3, 10)).toEqual([0, 1, 2]);
    expect(tickIndices(0)).toEqual([]);
  });

  it("describes a boundary with its timestep", () => {
    const ts = [981, 961, 941];
    expect(describeBoundary(1, ts)).toBe("step 1 (t = 961)");
    expect(describeBoundary(3, ts)).toMatch(/end of the run/);
  });
});

describe("rows", () => {
  it("copies deeply", () => {
    const copy = cloneWindows(W);
    copy.words[0][1] = 99;
    copy.cross[0] = 7;
    expect(W.words[0][1]).toBe(0);
    expect(W.cross[0]).toBe(0);
  });

  it("replaces one row's window", () => {
    expect(withWindow(W, "cross", [5, 30]).cross).toEqual([5, 30]);
    expect(withWindow(W, "self_attn", [0, 3]).self_attn).toEqual([0, 3]);
    expect(withWindow(W, { word: "cat" }, [2, 4]).words).toEqual([["cat", 2, 4]]);
    expect(W.cross).toEqual([0, 40]);
  });

  it("adds a word row as a copy of the default window, once, and removes it", () => {
    const added = addWordRow(W, "tabby");
    expect(added.words).toEqual([["cat", 0, 10], ["tabby", 0, 40]]);
    expect(addWordRow(added, "tabby").words).toHaveLength(2);
    expect(removeWordRow(added, "cat").words).toEqual([["tabby", 0, 40]]);
  });
});
