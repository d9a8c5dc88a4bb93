import { describe, expect, it } from "vitest";
import { parseFrame } from "../lib/messages.js";

const dv = (bytes) => new DataView(Uint8Array.from(bytes).buffer);

describe("parseFrame", () => {
  it("accepts a well-formed frame", () => {
    const frame = parseFrame({ type: "frame", shape: [2, 3], seq: 4 }, [dv([1, 2, 3, 4, 5, 6])]);
    expect(frame.height).toBe(2);
    expect(frame.width).toBe(3);
    expect(frame.seq).toBe(4);
    expect(Array.from(frame.gray)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("gives seq null when absent", () => {
    expect(parseFrame({ type: "frame", shape: [1, 1] }, [dv([0])]).seq).toBeNull();
  });

  it.each([
    [{ type: "frame", shape: [2] }, [dv([1, 2])], /shape/],
    [{ type: "frame", shape: [0, 2] }, [dv([])], /integer/],
    [{ type: "frame", shape: [1, 2.5] }, [dv([1, 2])], /integer/],
    [{ type: "frame", shape: [2, 2] }, [dv([1, 2, 3])], /needs 4/],
    [{ type: "frame", shape: [1, 1] }, [], /exactly one buffer/],
    [{ type: "other", shape: [1, 1] }, [dv([1])], /not a frame/],
  ])("rejects %j", (msg, buffers, pattern) => {
    expect(() => parseFrame(msg, buffers)).toThrow(pattern);
  });
});
