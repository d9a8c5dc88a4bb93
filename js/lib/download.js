// Save bytes from the kernel (or from a trait) as a file through a temporary object URL.
import { asBytes } from "./pixels.js";

const SAFE_NAME = /^[\w .()-]{1,120}$/;

/**
 * Offer `data` as a download named `name`. Returns the anchor used (already removed).
 * @param {Document} doc
 * @param {DataView | ArrayBuffer | ArrayBufferView | string} data
 * @param {string} name
 * @param {string} mime
 */
export function downloadBytes(doc, data, name, mime) {
  if (typeof name !== "string" || !SAFE_NAME.test(name)) throw new TypeError(`unsafe file name: ${name}`);
  const part = typeof data === "string" ? data : asBytes(data);
  const blob = new Blob([part], { type: mime || "application/octet-stream" });
  const win = doc.defaultView;
  const url = win.URL.createObjectURL(blob);
  const a = doc.createElement("a");
  a.href = url;
  a.download = name;
  a.style.display = "none";
  doc.body.appendChild(a);
  try {
    a.click();
  } finally {
    a.remove();
    win.setTimeout(() => win.URL.revokeObjectURL(url), 60_000);
  }
  return a;
}

/**
 * Save a {"type": "download", name, mime} message from Python: its one buffer becomes the file.
 * Throws (TypeError) on a message without exactly one buffer or with an unsafe name.
 * @param {Document} doc
 * @param {{name: string, mime?: string}} msg
 * @param {ArrayLike<DataView> | undefined} buffers
 */
export function saveDownloadMessage(doc, msg, buffers) {
  if (!buffers || buffers.length !== 1) throw new TypeError("a download carries one buffer");
  return downloadBytes(doc, buffers[0], msg.name, msg.mime);
}

/**
 * Answer the model's download messages (call it from `initialize`: once per model, not per view).
 * A bad message is reported to Python as {"type": "client_error", "message": "download: ..."}.
 * @param {{ on(e: string, cb: Function): void, off(e: string, cb: Function): void, send(c: object): void }} model
 * @param {Document} [doc] the page's document when left out (looked up per message)
 * @returns {() => void} cleanup that removes the listener
 */
export function listenForDownloads(model, doc) {
  const onMessage = (msg, buffers) => {
    if (!msg || msg.type !== "download") return;
    try {
      saveDownloadMessage(doc || globalThis.document, msg, buffers);
    } catch (err) {
      model.send({ type: "client_error", message: `download: ${err.message}` });
    }
  };
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}
