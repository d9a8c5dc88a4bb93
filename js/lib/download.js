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
