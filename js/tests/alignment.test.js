import { describe, expect, it } from "vitest";
import {
  addLink,
  chipLabel,
  formatWeight,
  groupWords,
  heatColor,
  isEvenSplit,
  matrixFromLinks,
  parseWeight,
  removeLink,
  removeLinksOf,
  setWeight,
  sortLinks,
  visibleTokens,
} from "../lib/alignment.js";

describe("links", () => {
  it("sorts by source then target and copies", () => {
    const links = [[2, 1, 1], [0, 3, 0.5], [0, 1, 0.5]];
    const sorted = sortLinks(links);
    expect(sorted).toEqual([[0, 1, 0.5], [0, 3, 0.5], [2, 1, 1]]);
    sorted[0][2] = 9;
    expect(links[2][2]).toBe(0.5);
  });

  it("a second target splits the source's weight evenly (orange -> big tabby)", () => {
    let { links, added } = addLink([], 5, 5);
    expect(added).toBe(true);
    expect(links).toEqual([[5, 5, 1]]);
    ({ links } = addLink(links, 5, 6));
    expect(links).toEqual([[5, 5, 0.5], [5, 6, 0.5]]);
    ({ links } = addLink(links, 5, 7));
    expect(links.map((l) => l[2])).toEqual([1 / 3, 1 / 3, 1 / 3]);
  });

  it("splitting one source leaves other sources alone", () => {
    const { links } = addLink([[1, 1, 1], [5, 5, 1]], 5, 6);
    expect(links).toEqual([[1, 1, 1], [5, 5, 0.5], [5, 6, 0.5]]);
  });

  it("keeps weights the user edited and gives the new link an equal share", () => {
    const { links } = addLink([[5, 5, 0.8]], 5, 6);
    expect(links).toEqual([[5, 5, 0.8], [5, 6, 0.5]]);
  });

  it("linking an existing pair changes nothing", () => {
    const before = [[5, 5, 0.5], [5, 6, 0.5]];
    const { links, added } = addLink(before, 5, 6);
    expect(added).toBe(false);
    expect(links).toEqual(before);
  });

  it("removing re-splits an even split and keeps edited weights", () => {
    let result = removeLink([[5, 5, 0.5], [5, 6, 0.5], [1, 1, 1]], 5, 6);
    expect(result).toEqual({ links: [[1, 1, 1], [5, 5, 1]], removed: true });
    result = removeLink([[5, 5, 0.7], [5, 6, 0.3]], 5, 6);
    expect(result.links).toEqual([[5, 5, 0.7]]);
    result = removeLink([[5, 5, 1]], 4, 4);
    expect(result.removed).toBe(false);
  });

  it("removes every link of a token on either side", () => {
    const links = [[1, 1, 1], [5, 5, 0.5], [5, 6, 0.5], [6, 6, 1]];
    expect(removeLinksOf(links, "source", 5)).toEqual({ links: [[1, 1, 1], [6, 6, 1]], removed: 2 });
    expect(removeLinksOf(links, "target", 6)).toEqual({ links: [[1, 1, 1], [5, 5, 1]], removed: 2 });
    expect(removeLinksOf(links, "target", 9).removed).toBe(0);
  });

  it("sets one weight", () => {
    expect(setWeight([[1, 2, 0.5], [1, 3, 0.5]], 1, 3, 0.25)).toEqual([[1, 2, 0.5], [1, 3, 0.25]]);
  });

  it("recognises an even split within float32 rounding", () => {
    expect(isEvenSplit([0.3333333432674408, 0.3333333432674408, 0.3333333432674408])).toBe(true);
    expect(isEvenSplit([0.5, 0.4])).toBe(false);
    expect(isEvenSplit([])).toBe(true);
  });

  it("parses typed weights and refuses non-finite ones", () => {
    expect(parseWeight("0.25")).toBe(0.25);
    expect(parseWeight(" -1 ")).toBe(-1);
    expect(parseWeight(2)).toBe(2);
    for (const bad of ["", "abc", "NaN", "Infinity", Number.NaN, Number.POSITIVE_INFINITY, null, undefined]) {
      expect(parseWeight(bad)).toBeNull();
    }
  });
});

describe("matrix M (used block)", () => {
  it("sums links and feeds BOS and EOS when nothing else does", () => {
    const m = matrixFromLinks([[1, 1, 1], [2, 2, 0.5], [2, 3, 0.5]], 4, 5);
    expect(m).toEqual([
      [1, 0, 0, 0, 0],
      [0, 1, 0, 0, 0],
      [0, 0, 0.5, 0.5, 0],
      [0, 0, 0, 0, 1],
    ]);
  });

  it("does not add BOS/EOS when a link already feeds them, or when asked not to", () => {
    const m = matrixFromLinks([[1, 0, 0.5], [1, 4, 2]], 4, 5);
    expect(m[0][0]).toBe(0);
    expect(m[3][4]).toBe(0);
    expect(m[1][4]).toBe(2);
    const plain = matrixFromLinks([], 3, 3, { includeSpecial: false });
    expect(plain.flat().every((v) => v === 0)).toBe(true);
  });

  it("feeds only EOS on prompts without BOS (T5's, on Flux: position 0 is a word)", () => {
    const m = matrixFromLinks([[1, 1, 1]], 3, 3, { bos: false });
    expect(m[0][0]).toBe(0); // the first word is left unlinked, as the user left it
    expect(m[2][2]).toBe(1);
  });

  it("ignores links outside the block", () => {
    const m = matrixFromLinks([[9, 1, 1], [1, 9, 1]], 3, 3);
    expect(m[1]).toEqual([0, 0, 0]);
  });
});

describe("token rows", () => {
  const tokens = [
    { pos: 0, text: "<|startoftext|>", word: -1, word_text: "", special: "bos" },
    { pos: 1, text: "a", word: 0, word_text: "a", special: "" },
    { pos: 2, text: "photo", word: 1, word_text: "photorealistic", special: "" },
    { pos: 3, text: "realistic", word: 1, word_text: "photorealistic", special: "" },
    { pos: 4, text: "<|endoftext|>", word: -1, word_text: "", special: "eos" },
  ];

  it("hides BOS/EOS unless asked", () => {
    expect(visibleTokens(tokens, false).map((t) => t.pos)).toEqual([1, 2, 3]);
    expect(visibleTokens(tokens, true).map((t) => t.pos)).toEqual([0, 1, 2, 3, 4]);
  });

  it("groups the tokens of a multi-token word", () => {
    const groups = groupWords(tokens);
    expect(groups.map((g) => g.tokens.map((t) => t.pos))).toEqual([[0], [1], [2, 3], [4]]);
    expect(groups[2].text).toBe("photorealistic");
  });

  it("labels special chips and formats weights", () => {
    expect(tokens.map(chipLabel)).toEqual(["BOS", "a", "photo", "realistic", "EOS"]);
    expect([1, 0.5, 1 / 3, -0.25, -0.001].map(formatWeight)).toEqual(["1", "0.5", "0.33", "-0.25", "0"]);
  });

  it("colours weights by sign and strength", () => {
    expect(heatColor(0)).toBe("transparent");
    expect(heatColor(1)).toBe("rgba(25, 118, 210, 1)");
    expect(heatColor(-1)).toMatch(/^rgba\(211, 47, 47, 1\)$/);
    const weak = Number(heatColor(0.1).match(/([\d.]+)\)$/)[1]);
    const strong = Number(heatColor(0.9).match(/([\d.]+)\)$/)[1]);
    expect(weak).toBeLessThan(strong);
  });
});
