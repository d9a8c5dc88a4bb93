import { describe, expect, it } from "vitest";
import {
  blockLabel,
  cellTitle,
  controlledAt,
  describeStep,
  groupBlocks,
  groupStreams,
  kindsOf,
  readCells,
  stripLayout,
} from "../src/player/unet_strip.js";

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

  // Flux: double-stream (joint) blocks, then single-stream blocks; SD3.5: joint + image-only per block
  const FLUX = [
    cell("transformer_blocks.0.attn.processor", "joint", "double 0", 0),
    cell("transformer_blocks.1.attn.processor", "joint", "double 1", 1),
    cell("single_transformer_blocks.0.attn.processor", "single", "single 0", 0),
    cell("single_transformer_blocks.1.attn.processor", "single", "single 1", 1),
    cell("single_transformer_blocks.2.attn.processor", "single", "single 2", 2),
  ];
  const SD35 = [
    cell("transformer_blocks.0.attn.processor", "joint", "double 0", 0),
    cell("transformer_blocks.0.attn2.processor", "image-self", "double 0", 0),
    cell("transformer_blocks.1.attn.processor", "joint", "double 1", 1),
  ];

  it("lays a DiT out as rows of blocks by stream and index, a UNet as a U", () => {
    expect(stripLayout(CELLS)).toBe("unet");
    expect(stripLayout(FLUX)).toBe("blocks");
    expect(stripLayout(SD35)).toBe("blocks");
    expect(readCells(FLUX)).toEqual(FLUX); // the joint kinds are cells too
    const streams = groupStreams(FLUX);
    expect(streams.map((s) => [s.stream, s.name, s.blocks.map((b) => [b.block, b.cells.map((c) => c.index)])])).toEqual([
      ["double", "double-stream blocks", [["double 0", [0]], ["double 1", [1]]]],
      ["single", "single-stream blocks", [["single 0", [2]], ["single 1", [3]], ["single 2", [4]]]],
    ]);
    const sd35 = groupStreams(SD35);
    expect(sd35.map((s) => s.blocks.map((b) => b.cells.map((c) => c.kind)))).toEqual([[["joint", "image-self"], ["joint"]]]);
    expect(blockLabel("single 12", "blocks")).toBe("12");
    expect(blockLabel("up 1", "unet")).toBe("up 1");
    expect(blockLabel("mid", "blocks")).toBe("mid");
    expect(kindsOf(FLUX)).toEqual(["joint", "single"]);
    expect(kindsOf(SD35)).toEqual(["joint", "image-self"]);
    expect(kindsOf(CELLS)).toEqual(["self", "cross", "feature"]);
  });

  it("says what a DiT step shows in blocks", () => {
    expect(describeStep(FLUX, new Set([0, 1, 3]), 0)).toBe(
      "step 1: joint attention in 2 of 2 blocks (double 0, double 1); single-stream attention in 1 of 3 blocks (single 1)"
    );
    expect(cellTitle(FLUX[2], true)).toBe("single_transformer_blocks.0.attn.processor (single-stream attention): changed by the rule");
  });
});
