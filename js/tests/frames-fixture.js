// Builds playback messages the way p2p_widgets/frames.py does, for tests.

/** A run header for prompts given as token lists. */
export function header(run, tokenLists, nEvals = 10) {
  return {
    type: "run",
    run,
    n_evals: nEvals,
    mime: "image/png",
    prompts: tokenLists.map((tokens, k) => ({ text: `prompt ${k}`, tokens })),
  };
}

/**
 * A frame message and its buffers. `maps(g, b, t, i)` gives the uint8 value of pixel i of token t
 * of prompt b at grid g; `scale(g, b, t)` its scale.
 */
export function frame({
  run = 1,
  step = 0,
  timestep = 900,
  nImages = 2,
  tokens = 3,
  grids = [
    [4, 4],
    [2, 2],
  ],
  imageSize = [8, 8],
  maps = (g, b, t, i) => (g + b + t + i) % 256,
  scale = () => 1,
  image = (b) => Uint8Array.from([137, 80, 78, 71, b]),
} = {}) {
  const msg = { type: "frame", run, step, timestep, mime: "image/png", n_images: nImages, image_size: imageSize, tokens, grids };
  const buffers = [];
  for (let b = 0; b < nImages; b++) buffers.push(image(b));
  grids.forEach(([h, w], g) => {
    const plane = new Uint8Array(nImages * tokens * h * w);
    for (let b = 0; b < nImages; b++) {
      for (let t = 0; t < tokens; t++) {
        for (let i = 0; i < h * w; i++) plane[(b * tokens + t) * h * w + i] = maps(g, b, t, i);
      }
    }
    buffers.push(plane);
  });
  const scales = new Float32Array(grids.length * nImages * tokens);
  for (let g = 0; g < grids.length; g++) {
    for (let b = 0; b < nImages; b++) for (let t = 0; t < tokens; t++) scales[(g * nImages + b) * tokens + t] = scale(g, b, t);
  }
  buffers.push(new Uint8Array(scales.buffer));
  return { msg, buffers };
}

/** DataViews as anywidget delivers them (inside a larger buffer, at an offset). */
export function asDataViews(buffers) {
  return buffers.map((b) => {
    const big = new Uint8Array(b.length + 16);
    big.set(b, 7);
    return new DataView(big.buffer, 7, b.length);
  });
}
