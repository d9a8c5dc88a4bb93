import { describe, expect, it } from "vitest";
import { bandLabel, describeBand, readBands } from "../src/timeline/rule_bands.js";

const TS = [981, 781, 581, 381, 181];

describe("rule bands (pure)", () => {
  it("keeps well-formed bands inside the run and drops the rest", () => {
    const bands = readBands(
      [
        { rule: "MutualSelfAttention", what: "mutual self-attention", start: 2, end: 5 },
        { what: "no rule name", start: 0, end: 0 },
        { rule: "X", what: "past the end", start: 1, end: 6 },
        { rule: "X", what: "backwards", start: 3, end: 2 },
        { rule: "X", what: "fractional", start: 0.5, end: 2 },
        null,
        { rule: "X", start: 0, end: 1 },
      ],
      5
    );
    expect(bands).toEqual([
      { rule: "MutualSelfAttention", what: "mutual self-attention", start: 2, end: 5 },
      { rule: "", what: "no rule name", start: 0, end: 0 },
    ]);
    expect(readBands("nope", 5)).toEqual([]);
  });

  it("labels a band with its rule and describes its steps and timesteps", () => {
    const band = { rule: "PlugAndPlay", what: "ResNet features", start: 0, end: 4 };
    expect(bandLabel(band)).toBe("PlugAndPlay: ResNet features");
    expect(bandLabel({ ...band, rule: "" })).toBe("ResNet features");
    expect(describeBand(band, TS)).toBe("PlugAndPlay: ResNet features: steps 0 (t = 981) to 3 (t = 381), 4 of 5 (read-only)");
    expect(describeBand({ ...band, start: 4, end: 5 }, TS)).toBe("PlugAndPlay: ResNet features: step 4 (t = 181), 1 of 5 (read-only)");
    expect(describeBand({ ...band, start: 3, end: 3 }, TS)).toBe("PlugAndPlay: ResNet features: no steps (read-only)");
  });
});
