// The thumbnails of one model, shared by its views: PNG bytes from Python (binary buffers of a
// {"type": "thumbs", version, rows, missing} message) kept as object URLs per row. Views ask for
// the rows they show (`want`); rows neither held nor asked for already are requested in batches,
// at most once, for the model's current `version` (a new version drops everything).
import { asBytes } from "../../lib/pixels.js";

export const BATCH = 64; // rows per request (Python takes up to 256)

/**
 * @param {{URL: typeof URL, Blob: typeof Blob}} [env] where object URLs come from (the page's window)
 */
export function createThumbs(env = globalThis) {
  /** @type {Map<number, string | null>} row -> object URL, or null: the row has no image */
  const urls = new Map();
  const pending = new Set();
  const listeners = new Set();
  let version = null;
  let model = null;

  function reset(next) {
    for (const url of urls.values()) if (url) env.URL.revokeObjectURL(url);
    urls.clear();
    pending.clear();
    version = next;
  }

  function onMessage(msg, buffers) {
    if (!msg || msg.type !== "thumbs" || msg.version !== version) return;
    const rows = Array.isArray(msg.rows) ? msg.rows : [];
    if (!buffers || buffers.length !== rows.length) {
      model.send({ type: "client_error", message: `thumbs: ${rows.length} rows but ${buffers ? buffers.length : 0} buffers` });
      return;
    }
    rows.forEach((row, k) => {
      const old = urls.get(row);
      if (old) env.URL.revokeObjectURL(old);
      urls.set(row, env.URL.createObjectURL(new env.Blob([asBytes(buffers[k])], { type: "image/png" })));
      pending.delete(row);
    });
    for (const row of Array.isArray(msg.missing) ? msg.missing : []) {
      urls.set(row, null);
      pending.delete(row);
    }
    const changed = new Set([...rows, ...(msg.missing || [])]);
    for (const fn of listeners) fn(changed);
  }

  return {
    /** Follow `m`'s messages and version; returns the cleanup. */
    listen(m) {
      model = m;
      reset(m.get("version"));
      const onVersion = () => reset(m.get("version"));
      m.on("msg:custom", onMessage);
      m.on("change:version", onVersion);
      return () => {
        m.off("msg:custom", onMessage);
        m.off("change:version", onVersion);
        reset(null);
        model = null;
      };
    },
    /** The object URL of `row`'s thumbnail; null: it has none; undefined: not here (yet). */
    get: (row) => urls.get(row),
    /** Ask Python for the rows of `rows` not held or asked for yet; returns how many were asked for. */
    want(rows) {
      if (!model || version === null) return 0;
      const ask = [...new Set(rows)].filter((r) => !urls.has(r) && !pending.has(r));
      for (let k = 0; k < ask.length; k += BATCH) {
        const chunk = ask.slice(k, k + BATCH);
        for (const r of chunk) pending.add(r);
        model.send({ type: "thumbs", version, rows: chunk });
      }
      return ask.length;
    },
    /** Call `fn(changedRows)` when thumbnails arrive; returns the cleanup. */
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    get size() {
      return urls.size;
    },
  };
}
