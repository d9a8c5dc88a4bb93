// Painting one frame into the canvases: the x0 preview of each prompt, and each selected token's
// heat map (normalised per token or over all of them) over its preview.
import { heatRgba, normalizeMaps, tokenMap } from "../../lib/heatmap.js";

/** @typedef {import("./view.js").PlayerView} PlayerView */

function context2d(canvas) {
  try {
    return canvas.getContext ? canvas.getContext("2d") : null;
  } catch {
    return null;
  }
}

/** Maps of every selected token the frame has, normalised together ("global" compares prompts). */
function heatOf(v, frame) {
  const side = v.model.get("resolution") || 0;
  const mode = v.model.get("normalize") === "global" ? "global" : "token";
  const wanted = [];
  for (const entry of v.tiles) {
    for (const t of entry.tiles) if (entry.b < frame.nImages && t.pos < frame.tokens) wanted.push([entry, t]);
  }
  const maps = wanted.map(([entry, t]) => tokenMap(frame, entry.b, t.pos, side));
  const values = normalizeMaps(maps, mode);
  const heat = new Map();
  wanted.forEach(([, t], k) => heat.set(t, { map: maps[k], values: values[k] }));
  return heat;
}

/** Size the canvases of a row to the frame and record its step (and each map's peak). */
function prepareRow(entry, frame, heat) {
  const [H, W] = frame.imageSize;
  const canvases = [entry.preview, ...entry.tiles.map((t) => t.canvas)];
  for (const c of canvases) {
    if (c.width !== W) c.width = W;
    if (c.height !== H) c.height = H;
    c.dataset.step = String(frame.step);
  }
  for (const t of entry.tiles) {
    const h = heat.get(t);
    t.canvas.dataset.peak = h ? String(Math.max(0, ...h.map.data)) : "0";
  }
  return canvases;
}

/** The preview bitmap, then (on a heat tile) the token's map scaled over it at `alpha`. */
function paintCanvas(v, c, bmp, h, alpha, frame) {
  const ctx = context2d(c);
  if (!ctx) return;
  const [H, W] = frame.imageSize;
  ctx.imageSmoothingEnabled = false;
  ctx.globalAlpha = 1;
  ctx.clearRect(0, 0, W, H);
  if (bmp) ctx.drawImage(bmp, 0, 0, W, H);
  if (h && typeof ImageData !== "undefined") {
    v.scratch.width = h.map.w;
    v.scratch.height = h.map.h;
    const sctx = context2d(v.scratch);
    if (sctx) {
      sctx.putImageData(new ImageData(heatRgba(h.values), h.map.w, h.map.h), 0, 0);
      ctx.globalAlpha = alpha;
      ctx.drawImage(v.scratch, 0, 0, W, H);
      ctx.globalAlpha = 1;
    }
  }
  c.dataset.drawnStep = String(frame.step);
}

/** Draw `frame` into every row; a newer draw that starts before the bitmaps decode wins. */
export function drawFrame(v, frame) {
  const token = ++v.drawToken;
  const opacity = v.model.get("opacity");
  const alpha = v.tempOpacity ?? (Number.isFinite(opacity) ? opacity : 0.6);
  const heat = heatOf(v, frame);
  for (const entry of v.tiles) {
    const canvases = prepareRow(entry, frame, heat);
    if (entry.b >= frame.nImages) continue;
    v.store.bitmapFor(frame, entry.b).then((bmp) => {
      if (token !== v.drawToken) return; // a newer draw started
      for (const c of canvases) {
        const t = entry.tiles.find((x) => x.canvas === c);
        paintCanvas(v, c, bmp, t && heat.get(t), alpha, frame);
      }
    });
  }
}
