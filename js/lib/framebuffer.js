// Playback frames from Python (p2p_widgets/frames.py): message parsing and the per-model buffer.
// Pure: no DOM, safe to unit-test in node.
import { asBytes } from "./pixels.js";

const MAX_SIDE = 4096;
const MAX_TOKENS = 77 + 512; // as frames.py: CLIP's 77, Flux's T5, SD3's CLIP + T5 segments
const MIMES = new Set(["image/png", "image/webp"]);

function isInt(v) {
  return Number.isInteger(v);
}

function checkSide(v, what) {
  if (!isInt(v) || v < 1 || v > MAX_SIDE) throw new RangeError(`${what} must be an integer in [1, ${MAX_SIDE}], got ${v}`);
}

/**
 * Check a {"type": "run"} header.
 * @returns {{ run: number, nEvals: number | null, prompts: {text: string, tokens: string[]}[], mime: string }}
 */
export function parseRunHeader(msg) {
  if (!msg || msg.type !== "run") throw new TypeError("not a run header");
  if (!isInt(msg.run)) throw new TypeError("run header needs an integer 'run'");
  if (msg.n_evals !== null && msg.n_evals !== undefined && (!isInt(msg.n_evals) || msg.n_evals < 1)) {
    throw new RangeError(`n_evals must be a positive integer, got ${msg.n_evals}`);
  }
  if (!Array.isArray(msg.prompts)) throw new TypeError("run header needs a 'prompts' list");
  const prompts = msg.prompts.map((p, k) => {
    if (!p || typeof p.text !== "string" || !Array.isArray(p.tokens) || p.tokens.some((t) => typeof t !== "string")) {
      throw new TypeError(`prompt ${k} must be {text, tokens: [strings]}`);
    }
    if (p.tokens.length > MAX_TOKENS) throw new RangeError(`prompt ${k} has more than ${MAX_TOKENS} tokens`);
    return { text: p.text, tokens: p.tokens.slice() };
  });
  const mime = msg.mime ?? "image/png";
  if (!MIMES.has(mime)) throw new TypeError(`unsupported image type ${mime}`);
  return { run: msg.run, nEvals: msg.n_evals ?? null, prompts, mime };
}

/**
 * Check a {"type": "frame"} message and copy its buffers (DataViews may not outlive the callback).
 * Buffers: one encoded image per prompt, one uint8 (B, T, h, w) plane per grid, float32 scales (G, B, T).
 */
export function parseFrameMessage(msg, buffers) {
  if (!msg || msg.type !== "frame") throw new TypeError("not a frame message");
  for (const key of ["run", "step", "timestep", "n_images", "tokens"]) {
    if (!isInt(msg[key])) throw new TypeError(`frame '${key}' must be an integer, got ${msg[key]}`);
  }
  const nImages = msg.n_images;
  const tokens = msg.tokens;
  if (msg.step < 0) throw new RangeError(`frame step must be >= 0, got ${msg.step}`);
  if (nImages < 1 || nImages > 64) throw new RangeError(`n_images must be in [1, 64], got ${nImages}`);
  if (tokens < 1 || tokens > MAX_TOKENS) throw new RangeError(`tokens must be in [1, ${MAX_TOKENS}], got ${tokens}`);
  if (!MIMES.has(msg.mime)) throw new TypeError(`unsupported image type ${msg.mime}`);
  const size = msg.image_size;
  if (!Array.isArray(size) || size.length !== 2) throw new TypeError("image_size must be [height, width]");
  checkSide(size[0], "image height");
  checkSide(size[1], "image width");
  if (!Array.isArray(msg.grids) || msg.grids.length < 1) throw new TypeError("grids must be a non-empty list of [h, w]");
  const expected = nImages + msg.grids.length + 1;
  if (!buffers || buffers.length !== expected) {
    throw new TypeError(`frame needs ${expected} buffers, got ${buffers ? buffers.length : 0}`);
  }
  const images = [];
  for (let b = 0; b < nImages; b++) {
    const bytes = asBytes(buffers[b]);
    if (bytes.length === 0) throw new RangeError(`image ${b} is empty`);
    images.push(bytes.slice());
  }
  const grids = msg.grids.map((g, k) => {
    if (!Array.isArray(g) || g.length !== 2) throw new TypeError(`grid ${k} must be [h, w]`);
    checkSide(g[0], "grid height");
    checkSide(g[1], "grid width");
    const data = asBytes(buffers[nImages + k]);
    const need = nImages * tokens * g[0] * g[1];
    if (data.length !== need) throw new RangeError(`maps at ${g[0]}x${g[1]} have ${data.length} bytes, need ${need}`);
    return { h: g[0], w: g[1], data: data.slice() };
  });
  const raw = asBytes(buffers[expected - 1]);
  const nScales = msg.grids.length * nImages * tokens;
  if (raw.length !== nScales * 4) throw new RangeError(`scales buffer has ${raw.length} bytes, need ${nScales * 4}`);
  const scales = new Float32Array(nScales);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < nScales; i++) {
    const v = view.getFloat32(i * 4, true);
    scales[i] = Number.isFinite(v) && v > 0 ? v : 0;
  }
  let nbytes = raw.length;
  for (const im of images) nbytes += im.length;
  for (const g of grids) nbytes += g.data.length;
  return {
    run: msg.run,
    step: msg.step,
    timestep: msg.timestep,
    mime: msg.mime,
    nImages,
    imageSize: [size[0], size[1]],
    tokens,
    grids,
    scales,
    images,
    nbytes,
  };
}

/** Check a {"type": "end"} message. */
export function parseEnd(msg) {
  if (!msg || msg.type !== "end" || !isInt(msg.run)) throw new TypeError("not an end message");
  const status = typeof msg.status === "string" ? msg.status : "done";
  return { run: msg.run, status };
}

/**
 * The frames of one run, kept per model (every view of the model reads the same buffer).
 * Frames of another run than the current header's are ignored; a repeated step replaces the
 * older copy. Memory is bounded: past `maxBytes`, every other step is dropped (first and newest kept).
 */
export class FrameBuffer {
  constructor({ maxBytes = 128 * 1024 * 1024 } = {}) {
    this.maxBytes = maxBytes;
    this.listeners = new Set();
    this.header = null;
    this.end = null;
    this.frames = new Map();
    this.steps = [];
    this.nbytes = 0;
  }

  get run() {
    return this.header ? this.header.run : null;
  }

  get size() {
    return this.steps.length;
  }

  /** Start a run (notifies "run"), or for the same run id refresh its header and keep the
   * frames (notifies "header"). Returns true when the frames were reset. */
  begin(header) {
    if (this.header && this.header.run === header.run) {
      this.header = header;
      this.notify("header");
      return false;
    }
    this.header = header;
    this.end = null;
    this.frames.clear();
    this.steps = [];
    this.nbytes = 0;
    this.notify("run");
    return true;
  }

  /** Forget everything (a `clear` message from Python). */
  clear(run = null) {
    this.header = run === null ? null : { run, nEvals: null, prompts: [], mime: "image/png" };
    this.end = null;
    this.frames.clear();
    this.steps = [];
    this.nbytes = 0;
    this.notify("run");
  }

  /** Add a parsed frame; returns false when it belongs to another run. */
  add(frame) {
    if (!this.header || frame.run !== this.header.run) return false;
    const old = this.frames.get(frame.step);
    if (old) this.nbytes -= old.nbytes;
    else this.steps.splice(this.insertionIndex(frame.step), 0, frame.step);
    this.frames.set(frame.step, frame);
    this.nbytes += frame.nbytes;
    while (this.nbytes > this.maxBytes && this.steps.length > 2) this.thin(frame.step);
    this.notify("frame", frame.step);
    return true;
  }

  finish(end) {
    if (!this.header || end.run !== this.header.run) return false;
    this.end = end;
    this.notify("end");
    return true;
  }

  insertionIndex(step) {
    let lo = 0;
    let hi = this.steps.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.steps[mid] < step) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  thin(keep) {
    const first = this.steps[0];
    const kept = [];
    this.steps.forEach((s, i) => {
      if (s === first || s === keep || i % 2 === 0) kept.push(s);
      else {
        this.nbytes -= this.frames.get(s).nbytes;
        this.frames.delete(s);
      }
    });
    if (kept.length === this.steps.length) {
      // nothing could go evenly: drop the oldest after the first
      const s = kept.splice(1, 1)[0];
      this.nbytes -= this.frames.get(s).nbytes;
      this.frames.delete(s);
    }
    this.steps = kept;
  }

  has(step) {
    return this.frames.has(step);
  }

  get(step) {
    return this.frames.get(step) ?? null;
  }

  /** The frame shown at `step`: the newest received step at or before it (else the first). */
  at(step) {
    if (!this.steps.length) return null;
    const i = this.insertionIndex(step + 1) - 1;
    return this.frames.get(this.steps[Math.max(i, 0)]);
  }

  /** Received step after / before `step` (or null). */
  next(step) {
    const i = this.insertionIndex(step + 1);
    return i < this.steps.length ? this.steps[i] : null;
  }

  prev(step) {
    const i = this.insertionIndex(step) - 1;
    return i >= 0 ? this.steps[i] : null;
  }

  first() {
    return this.steps.length ? this.steps[0] : null;
  }

  latest() {
    return this.steps.length ? this.steps[this.steps.length - 1] : null;
  }

  /** @param {(kind: string, step?: number) => void} fn */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  notify(kind, step) {
    for (const fn of [...this.listeners]) fn(kind, step);
  }
}
