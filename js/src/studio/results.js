// The result images: large, crisp (nearest-neighbour when enlarged), zoomed by the menu ("fit" picks
// the largest whole factor that fits the column), and the value of the pixel under the pointer, or
// under the keyboard probe (arrow keys on a focused image), read from every result at once.
import { button } from "../../lib/dom.js";
import { asBytes } from "../../lib/pixels.js";
import { movedProbe, pixelAt, readoutText, scaleOf } from "./zoom.js";

/** @typedef {import("./view.js").StudioView} StudioView */

const MAX_FIT_SIDE = 448; // "fit" never makes one image wider than this (CSS pixels): the panel's height

/** Give back the object URLs of the result images. */
export function revokeImageUrls(v) {
  for (const u of v.urls) v.win.URL.revokeObjectURL(u);
  v.urls = [];
}

function figureOf(v, item, k) {
  const el = v.el;
  const url = v.win.URL.createObjectURL(new Blob([asBytes(item.png)], { type: "image/png" }));
  v.urls.push(url);
  const label = String(item.label || "");
  const save = button(el, "p2p-studio__save", "PNG", {
    dataset: { index: k },
    "aria-label": `save the ${label} image as PNG`,
  });
  const img = el("img", { src: url, alt: label || `image ${k}`, draggable: false });
  const probe = el("span", { class: "p2p-studio__probe", hidden: true, "aria-hidden": "true" });
  const frame = el("div", {
    class: "p2p-studio__frame",
    tabindex: 0,
    role: "img",
    "aria-label": `${label}: arrow keys read pixel values`,
  }, [img, probe]);
  // once, on a node that is dropped with the next results: nothing to remove later
  img.addEventListener("load", () => !v.scope.disposed && layoutResults(v), { once: true });
  return el("figure", { class: "p2p-studio__image", dataset: { label } }, [frame, el("figcaption", {}, [el("span", { text: label }), save])]);
}

/** The result images from their PNG bytes, a save button each. */
export function showImages(v) {
  revokeImageUrls(v);
  v.pixels = new Map();
  v.probe = null;
  v.readout.textContent = "";
  v.results.replaceChildren();
  const images = v.model.get("images") || [];
  images.forEach((item, k) => {
    if (item && item.png) v.results.append(figureOf(v, item, k));
  });
  layoutResults(v);
}

function images(v) {
  return [...v.results.querySelectorAll(".p2p-studio__frame img")];
}

/** Size every result by the zoom menu (all share the first loaded image's scale). */
export function layoutResults(v) {
  const imgs = images(v);
  const side = imgs.map((i) => i.naturalWidth).find((w) => w > 0);
  if (!side) return;
  const width = v.results.clientWidth || 640;
  const scale = scaleOf(v.zoom.value, side, imgs.length, width, MAX_FIT_SIDE);
  v.results.dataset.scale = String(scale);
  for (const img of imgs) {
    const w = img.naturalWidth || side;
    img.style.width = `${Math.round(w * scale)}px`;
    img.style.height = `${Math.round((img.naturalHeight || w) * scale)}px`;
    img.classList.toggle("p2p-studio__img--crisp", scale >= 1);
  }
  showProbe(v);
}

/** RGBA of `img` (decoded once through a canvas), or null where no canvas is available. */
function pixelsOf(v, img) {
  if (v.pixels.has(img)) return v.pixels.get(img);
  let data = null;
  try {
    const c = v.doc.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext && c.getContext("2d");
    if (ctx && c.width > 0) {
      ctx.drawImage(img, 0, 0);
      data = ctx.getImageData(0, 0, c.width, c.height);
    }
  } catch {
    data = null; // a canvas the page may not read: no values, the rest still works
  }
  v.pixels.set(img, data);
  return data;
}

function rgbAt(v, img, x, y) {
  const data = pixelsOf(v, img);
  if (!data || x >= data.width || y >= data.height) return null;
  const i = (y * data.width + x) * 4;
  return [data.data[i], data.data[i + 1], data.data[i + 2]];
}

/** The probe's square on every image and the values under it. */
function showProbe(v) {
  const imgs = images(v);
  for (const img of imgs) {
    const mark = img.parentElement.querySelector(".p2p-studio__probe");
    const scale = (img.clientWidth || img.width) / Math.max(1, img.naturalWidth);
    mark.hidden = v.probe === null || !(scale >= 2);
    if (v.probe !== null) {
      mark.style.left = `${v.probe[0] * scale}px`;
      mark.style.top = `${v.probe[1] * scale}px`;
      mark.style.width = mark.style.height = `${scale}px`;
    }
  }
  if (v.probe === null) return;
  const values = imgs.map((img) => [img.closest(".p2p-studio__image").dataset.label, rgbAt(v, img, ...v.probe)]);
  v.readout.textContent = readoutText(v.probe[0], v.probe[1], values);
}

function onMove(v, e) {
  const img = e.target;
  if (!(img instanceof v.win.HTMLImageElement) || !img.closest(".p2p-studio__frame") || !img.naturalWidth) return;
  const rect = img.getBoundingClientRect();
  v.probe = pixelAt(e.clientX - rect.left, e.clientY - rect.top, img.naturalWidth, rect.width || img.naturalWidth);
  showProbe(v);
}

function onKey(v, e) {
  const frame = e.target;
  if (!(frame instanceof v.win.Element) || !frame.classList.contains("p2p-studio__frame")) return;
  const img = frame.querySelector("img");
  const next = movedProbe(v.probe || [0, 0], e.key, Math.max(1, img.naturalWidth));
  if (!next) return;
  e.preventDefault();
  v.probe = v.probe === null ? [0, 0] : next;
  showProbe(v);
}

/**
 * Zoom menu, pointer and keyboard probes, refit on resize.
 * @param {StudioView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachResults(v, scope) {
  scope.on(v.zoom, "change", () => layoutResults(v));
  scope.on(v.results, "mousemove", (e) => onMove(v, e));
  scope.on(v.results, "keydown", (e) => onKey(v, e));
  const Observer = v.win.ResizeObserver;
  if (Observer) {
    let width = -1; // refit when the column's width changes, a frame later (never inside the observer)
    const observer = new Observer(() => {
      const now = v.results.clientWidth;
      if (v.zoom.value !== "fit" || now === width) return;
      width = now;
      v.win.requestAnimationFrame(() => !scope.disposed && layoutResults(v));
    });
    observer.observe(v.results);
    scope.add(() => observer.disconnect());
  }
  scope.add(() => revokeImageUrls(v));
}
