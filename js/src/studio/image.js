// The real image to edit: shown from the `input_image` trait, sent to Python as bytes when chosen
// with the file button or dropped on its box (not while a run is busy).
import { asBytes } from "../../lib/pixels.js";

/** @typedef {import("./view.js").StudioView} StudioView */

function revokePreview(v) {
  if (v.previewUrl) v.win.URL.revokeObjectURL(v.previewUrl);
  v.previewUrl = null;
}

/** The loaded image (or none), its name, and the texts that depend on having one. */
export function showInputImage(v) {
  revokePreview(v);
  const note = String(v.model.get("image_note") || ""); // this model edits no real images (yet)
  v.imageNote.textContent = note;
  v.imageNote.hidden = !note;
  v.realHint.hidden = !!note;
  for (const row of v.realRows) row.hidden = !!note;
  v.realSummary.textContent = note ? "Real image (not on this model)" : "Real image (optional)";
  const png = v.model.get("input_image");
  const bytes = png ? asBytes(png) : new Uint8Array(0);
  const has = bytes.length > 0;
  if (has) {
    v.previewUrl = v.win.URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
    v.preview.src = v.previewUrl;
  } else {
    v.preview.removeAttribute("src");
  }
  v.preview.hidden = !has;
  v.clearImage.hidden = !has;
  v.imageName.textContent = has ? String(v.model.get("input_name") || "") : "none: images come from the seed";
  v.root.dataset.image = has ? "yes" : "no";
  v.seed.title = has ? "not used: the edit starts from the inverted image" : "";
  const method = v.model.get("method") || "p2p";
  const without = method === "p2p" ? "P2P" : `${method}${v.model.get("combine_p2p") ? " + P2P" : ""}`;
  v.baselineText.textContent = ` also without ${without} (${has ? "same inverted noise" : "same seed"})`;
  if (has && !v.shownImage) v.realBox.open = true; // a newly loaded image: show it
  v.shownImage = has;
}

/** Send a file's bytes to Python as {"type": "image", name} with one buffer. */
export function sendImage(v, file) {
  if (!file) return;
  file.arrayBuffer().then(
    (buffer) => v.model.send({ type: "image", name: file.name }, undefined, [buffer]),
    (err) => v.model.send({ type: "client_error", message: `could not read ${file.name}: ${err.message}` }),
  );
}

/**
 * Dropping a picture on the real-image box sends it.
 * @param {StudioView} v
 * @param {ReturnType<typeof import("../../lib/scope.js").createScope>} scope
 */
export function attachDrop(v, scope) {
  const box = v.realBox;
  scope.on(box, "dragover", (e) => {
    if (v.busy() || v.model.get("image_note")) return;
    e.preventDefault(); // allows the drop
    box.classList.add("p2p-studio__real--over");
  });
  scope.on(box, "dragleave", () => box.classList.remove("p2p-studio__real--over"));
  scope.on(box, "drop", (e) => {
    e.preventDefault();
    box.classList.remove("p2p-studio__real--over");
    const files = e.dataTransfer && e.dataTransfer.files;
    if (!v.busy() && !v.model.get("image_note") && files && files.length) sendImage(v, files[0]);
  });
  scope.add(() => revokePreview(v));
}
