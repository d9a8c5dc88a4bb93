import { describe, expect, it } from "vitest";
import { cellTitle, controlledAt, describeStep, groupBlocks, readCells } from "../src/player/unet_strip.js";

const cell = (name, kind, block, depth) => ({ name, kind, block, depth });
const CELLS = [
  cell("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor", "self", "down 0", 0),
  cell("down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor", "cross", "down 0", 0),
  cell("mid_block.attentions.0.transformer_blocks.0.attn1.processor", "self", "mid", 1),
  cell("up_blocks.0.attentions.0.transformer_blocks.0.attn1.processor", "self", "up 0", 0),
  cell("up_blocks.0.resnets.1.conv2", "feature", "up 0", 0),
  cell("up_blocks.0.attentions.1.transformer_blocks.0.attn1.processor", "self", "up 0", 0),
];

describe("UNet strip data (pure)", () => {
  it("drops malformed cells and groups consecutive cells by block, keeping their indices", () => {
    expect(readCells([...CELLS, { name: "x", kind: "other", block: "up 0", depth: 0 }, null])).toEqual(CELLS);
    expect(readCells({})).toEqual([]);
    const blocks = groupBlocks(CELLS);
    expect(blocks.map((b) => [b.block, b.depth, b.cells.map((c) => c.index)])).toEqual([
      ["down 0", 0, [0, 1]],
      ["mid", 1, [2]],
      ["up 0", 0, [3, 4, 5]],
    ]);
    expect(blocks[2].cells[1].kind).toBe("feature");
  });

  it("reads a step's controlled cells, null for a step not known yet", () => {
    const controlled = [[], [3, 5], [3, 4, 5]];
    expect(controlledAt(controlled, 0)).toEqual(new Set());
    expect(controlledAt(controlled, 2)).toEqual(new Set([3, 4, 5]));
    expect(controlledAt(controlled, 3)).toBeNull();
    expect(controlledAt(controlled, -1)).toBeNull();
    expect(controlledAt(undefined, 0)).toBeNull();
  });

  it("says in words what a step shows, by kind and block", () => {
    expect(describeStep(CELLS, new Set([3, 4, 5]), 2)).toBe(
      "step 3: self-attention in 2 of 4 layers (up 0); module output in 1 of 1 modules (up 0)"
    );
    expect(describeStep(CELLS, new Set(), 0)).toBe("step 1: no layer under the rule's control");
    expect(describeStep(CELLS, null, 7)).toBe("step 8: not known yet");
    expect(cellTitle(CELLS[4], true)).toBe("up_blocks.0.resnets.1.conv2 (module output): changed by the rule");
    expect(cellTitle(CELLS[0], false)).toMatch(/\(self-attention\): left alone$/);
    expect(cellTitle(CELLS[0], null)).toMatch(/\(self-attention\)$/);
  });
});
