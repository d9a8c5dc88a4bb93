// Validation of custom messages from Python (pure; no DOM).
import { asBytes } from "./pixels.js";

const MAX_SIDE = 4096;

/**
 * Check a {"type": "frame", "shape": [h, w]} message and its single grey-byte buffer.
 * @param {unknown} msg
 * @param {ArrayLike<DataView>} buffers
 * @returns {{ height: number, width: number, gray: Uint8Array, seq: number | null }}
 */
export function parseFrame(msg, buffers) {
  if (!msg || typeof msg !== "object" || msg.type !== "frame") throw new TypeError("not a frame message");
  const shape = msg.shape;
  if (!Array.isArray(shape) || shape.length !== 2) throw new TypeError("frame.shape must be [height, width]");
  const [height, width] = shape;
  for (const side of shape) {
    if (!Number.isInteger(side) || side < 1 || side > MAX_SIDE) {
      throw new RangeError(`frame side must be an integer in [1, ${MAX_SIDE}], got ${side}`);
    }
  }
  if (!buffers || buffers.length !== 1) throw new TypeError(`frame needs exactly one buffer, got ${buffers ? buffers.length : 0}`);
  const gray = asBytes(buffers[0]);
  if (gray.length !== height * width) {
    throw new RangeError(`frame buffer has ${gray.length} bytes, shape [${height}, ${width}] needs ${height * width}`);
  }
  const seq = Number.isInteger(msg.seq) ? msg.seq : null;
  return { height, width, gray, seq };
}
