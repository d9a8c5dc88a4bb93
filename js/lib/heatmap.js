// Attention heat maps from playback frames: dequantise, combine grids, normalise, colour.
// Pure: no DOM (the player draws the RGBA these return).

// Anchor colours, evenly spaced from 0 to 1; the same as HEAT_ANCHORS in p2p_widgets/frames.py.
export const HEAT_ANCHORS = [
  [13, 8, 48],
  [84, 18, 124],
  [168, 38, 112],
  [230, 92, 58],
  [250, 172, 40],
  [252, 246, 180],
];

let lutCache = null;

/** 256 x RGB colour table interpolated between the anchors. */
export function heatLut() {
  if (lutCache) return lutCache;
  const lut = new Uint8Array(256 * 3);
  const n = HEAT_ANCHORS.length - 1;
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * n;
    const k = Math.min(Math.floor(x), n - 1);
    const f = x - k;
    for (let c = 0; c < 3; c++) {
      const v = HEAT_ANCHORS[k][c] + (HEAT_ANCHORS[k + 1][c] - HEAT_ANCHORS[k][c]) * f;
      lut[i * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  lutCache = lut;
  return lut;
}

/**
 * The true (dequantised) map of token `t` of prompt `b` at grid index `g`: q / 255 * scale.
 * @returns {{ h: number, w: number, data: Float32Array }}
 */
export function gridMap(frame, g, b, t) {
  const grid = frame.grids[g];
  if (!grid) throw new RangeError(`no grid ${g}`);
  if (b < 0 || b >= frame.nImages || t < 0 || t >= frame.tokens) throw new RangeError(`no token ${t} of prompt ${b}`);
  const n = grid.h * grid.w;
  const offset = (b * frame.tokens + t) * n;
  const scale = frame.scales[(g * frame.nImages + b) * frame.tokens + t];
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (grid.data[offset + i] / 255) * scale;
  return { h: grid.h, w: grid.w, data };
}

/** Nearest-neighbour resize of a row-major (h, w) map to (H, W). */
export function resizeNearest(data, h, w, H, W) {
  if (h === H && w === W) return data;
  const out = new Float32Array(H * W);
  for (let y = 0; y < H; y++) {
    const sy = Math.min(h - 1, Math.floor((y * h) / H));
    for (let x = 0; x < W; x++) out[y * W + x] = data[sy * w + Math.min(w - 1, Math.floor((x * w) / W))];
  }
  return out;
}

/**
 * A token's map at one resolution (grid side), or every grid averaged at the finest (side 0).
 * @returns {{ h: number, w: number, data: Float32Array }}
 */
export function tokenMap(frame, b, t, side = 0) {
  let indices = frame.grids.map((_, g) => g);
  if (side) {
    const match = indices.filter((g) => Math.max(frame.grids[g].h, frame.grids[g].w) === side);
    indices = match.length ? match : [0];
  }
  let best = indices[0];
  for (const g of indices) if (frame.grids[g].h * frame.grids[g].w > frame.grids[best].h * frame.grids[best].w) best = g;
  const H = frame.grids[best].h;
  const W = frame.grids[best].w;
  const acc = new Float32Array(H * W);
  for (const g of indices) {
    const m = gridMap(frame, g, b, t);
    const up = resizeNearest(m.data, m.h, m.w, H, W);
    for (let i = 0; i < acc.length; i++) acc[i] += up[i];
  }
  if (indices.length > 1) for (let i = 0; i < acc.length; i++) acc[i] /= indices.length;
  return { h: H, w: W, data: acc };
}

function peakOf(data) {
  let m = 0;
  for (let i = 0; i < data.length; i++) if (data[i] > m) m = data[i];
  return m;
}

/**
 * Normalise maps to [0, 1]: "token" divides each by its own peak, "global" all by the largest peak.
 * @param {{data: Float32Array}[]} maps
 * @param {"token" | "global"} mode
 * @returns {Float32Array[]}
 */
export function normalizeMaps(maps, mode = "token") {
  const peaks = maps.map((m) => peakOf(m.data));
  const shared = Math.max(0, ...peaks);
  return maps.map((m, k) => {
    const top = mode === "global" ? shared : peaks[k];
    const out = new Float32Array(m.data.length);
    if (top > 0) for (let i = 0; i < out.length; i++) out[i] = Math.min(1, m.data[i] / top);
    return out;
  });
}

/** Values in [0, 1] -> RGBA bytes through the colour table (alpha 255). */
export function heatRgba(values, lut = heatLut()) {
  const out = new Uint8ClampedArray(values.length * 4);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const k = Math.max(0, Math.min(255, Math.round((Number.isFinite(v) ? v : 0) * 255))) * 3;
    out[i * 4] = lut[k];
    out[i * 4 + 1] = lut[k + 1];
    out[i * 4 + 2] = lut[k + 2];
    out[i * 4 + 3] = 255;
  }
  return out;
}

/** Display label of a token: BOS/EOS get readable names, word-end markers are dropped. */
export function tokenLabel(tokens, position) {
  const text = tokens[position] ?? "";
  if (position === 0 && text.startsWith("<|start")) return "⟨start⟩";
  if (position === tokens.length - 1 && (text.startsWith("<|end") || text === "</s>")) return "⟨end⟩"; // CLIP's, T5's
  return text.replace(/<\/w>$/, "");
}
