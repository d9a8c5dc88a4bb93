import { describe, expect, it } from "vitest";
import { FrameBuffer, parseEnd, parseFrameMessage, parseRunHeader } from "../lib/framebuffer.js";
import { asDataViews, frame, header } from "./frames-fixture.js";

function parsed(opts) {
  const { msg, buffers } = frame(opts);
  return parseFrameMessage(msg, asDataViews(buffers));
}

describe("parseFrameMessage", () => {
  it("reads images, uint8 planes and float32 scales honouring byteOffset", () => {
    const f = parsed({ step: 4, scale: (g, b, t) => 0.5 + g + b * 10 + t * 100 });
    expect(f.step).toBe(4);
    expect(f.images.map((im) => Array.from(im))).toEqual([
      [137, 80, 78, 71, 0],
      [137, 80, 78, 71, 1],
    ]);
    expect(f.grids.map((g) => [g.h, g.w, g.data.length])).toEqual([
      [4, 4, 2 * 3 * 16],
      [2, 2, 2 * 3 * 4],
    ]);
    expect(f.grids[0].data[0]).toBe(0);
    expect(f.grids[1].data[5]).toBe((1 + 0 + 1 + 1) % 256); // g=1, b=0, t=1, i=1
    expect(f.scales[0]).toBe(0.5);
    expect(f.scales[(1 * 2 + 1) * 3 + 2]).toBe(0.5 + 1 + 10 + 200);
    expect(f.nbytes).toBe(10 + 96 + 24 + 4 * 12);
  });

  it("copies the buffers (DataViews may be reused after the callback)", () => {
    const { msg, buffers } = frame();
    const views = asDataViews(buffers);
    const f = parseFrameMessage(msg, views);
    new Uint8Array(views[2].buffer).fill(99);
    expect(f.grids[0].data[0]).toBe(0);
  });

  it.each([
    [(m) => ({ ...m, step: "1" }), /step/],
    [(m) => ({ ...m, tokens: 0 }), /tokens/],
    [(m) => ({ ...m, mime: "image/svg+xml" }), /unsupported/],
    [(m) => ({ ...m, image_size: [8] }), /image_size/],
    [(m) => ({ ...m, grids: [[4, 5000], [2, 2]] }), /grid width/],
  ])("rejects malformed content %#", (change, error) => {
    const { msg, buffers } = frame();
    expect(() => parseFrameMessage(change(msg), asDataViews(buffers))).toThrow(error);
  });

  it("rejects wrong buffer counts and sizes", () => {
    const { msg, buffers } = frame();
    expect(() => parseFrameMessage(msg, asDataViews(buffers.slice(1)))).toThrow(/needs 5 buffers/);
    const short = buffers.slice();
    short[2] = short[2].slice(1);
    expect(() => parseFrameMessage(msg, asDataViews(short))).toThrow(/need 96/);
    const badScales = buffers.slice();
    badScales[4] = badScales[4].slice(4);
    expect(() => parseFrameMessage(msg, asDataViews(badScales))).toThrow(/scales/);
  });

  it("turns non-finite or negative scales into 0", () => {
    const f = parsed({ scale: (g, b, t) => (t === 0 ? Number.NaN : t === 1 ? -2 : 3) });
    expect(Array.from(f.scales.slice(0, 3))).toEqual([0, 0, 3]);
  });
});

describe("parseRunHeader / parseEnd", () => {
  it("accepts a header and checks its prompts", () => {
    const h = parseRunHeader(header(2, [["<|startoftext|>", "a", "<|endoftext|>"]]));
    expect(h).toEqual({ run: 2, nEvals: 10, mime: "image/png", prompts: [{ text: "prompt 0", tokens: ["<|startoftext|>", "a", "<|endoftext|>"] }] });
    expect(() => parseRunHeader({ ...header(2, [["a"]]), prompts: [{ text: 1, tokens: [] }] })).toThrow(/prompt 0/);
    expect(() => parseRunHeader({ ...header(2, [["a"]]), run: "x" })).toThrow(/run/);
    expect(parseEnd({ type: "end", run: 2, status: "stopped" })).toEqual({ run: 2, status: "stopped" });
    expect(() => parseEnd({ type: "end" })).toThrow();
  });
});

describe("FrameBuffer", () => {
  it("keeps the frames of the current run in step order and dedupes", () => {
    const buf = new FrameBuffer();
    const events = [];
    buf.subscribe((kind, step) => events.push([kind, step]));
    expect(buf.add(parsed({ step: 0 }))).toBe(false); // no run yet
    buf.begin(parseRunHeader(header(1, [["a"], ["b"]])));
    for (const s of [0, 6, 3, 9]) buf.add(parsed({ step: s }));
    buf.add(parsed({ step: 3, timestep: 1 })); // repeated step replaces
    expect(buf.steps).toEqual([0, 3, 6, 9]);
    expect(buf.get(3).timestep).toBe(1);
    expect(buf.add(parsed({ step: 4, run: 2 }))).toBe(false); // another run
    expect(buf.size).toBe(4);
    expect(events[0]).toEqual(["run", undefined]);
    expect(events.filter((e) => e[0] === "frame").map((e) => e[1])).toEqual([0, 6, 3, 9, 3]);
  });

  it("finds the frame shown at a step and the neighbours", () => {
    const buf = new FrameBuffer();
    buf.begin(parseRunHeader(header(1, [["a"]])));
    expect(buf.at(3)).toBe(null);
    for (const s of [2, 5, 9]) buf.add(parsed({ step: s }));
    expect([0, 2, 4, 5, 8, 20].map((s) => buf.at(s).step)).toEqual([2, 2, 2, 5, 5, 9]);
    expect([buf.next(2), buf.next(5), buf.next(9), buf.prev(5), buf.prev(2)]).toEqual([5, 9, null, 2, null]);
    expect([buf.first(), buf.latest()]).toEqual([2, 9]);
  });

  it("a new run resets, the same run id keeps the frames (replay after reload)", () => {
    const buf = new FrameBuffer();
    buf.begin(parseRunHeader(header(1, [["a"]])));
    buf.add(parsed({ step: 1 }));
    expect(buf.begin(parseRunHeader(header(1, [["a"]])))).toBe(false);
    expect(buf.steps).toEqual([1]);
    expect(buf.begin(parseRunHeader(header(2, [["a"]])))).toBe(true);
    expect(buf.steps).toEqual([]);
    expect(buf.finish({ run: 1, status: "done" })).toBe(false);
    expect(buf.finish({ run: 2, status: "done" })).toBe(true);
    buf.clear(5);
    expect([buf.run, buf.size, buf.end]).toEqual([5, 0, null]);
  });

  it("stays within its byte budget, keeping the first and the newest frame", () => {
    const one = parsed({ step: 0 }).nbytes;
    const buf = new FrameBuffer({ maxBytes: one * 6 });
    buf.begin(parseRunHeader(header(1, [["a"]])));
    for (let s = 0; s < 40; s++) {
      buf.add(parsed({ step: s }));
      expect(buf.nbytes).toBeLessThanOrEqual(one * 6);
    }
    expect(buf.first()).toBe(0);
    expect(buf.latest()).toBe(39);
    expect(buf.size).toBeGreaterThanOrEqual(3);
  });
});
