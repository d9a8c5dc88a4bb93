// A stand-in for anywidget's model proxy, close enough for view tests:
// get/set (fires change:<key> synchronously on change), save_changes (counted), send (recorded),
// on/off, and a test-only receive() that delivers a custom message with DataView buffers.
export class FakeModel {
  constructor(state = {}) {
    this.state = { error: "", ...state };
    this.sent = [];
    this.saves = 0;
    this.listeners = new Map();
  }

  get(key) {
    return this.state[key];
  }

  set(key, value) {
    const old = this.state[key];
    this.state[key] = value;
    if (old !== value) this.emit(`change:${key}`, value);
  }

  save_changes() {
    this.saves += 1;
  }

  send(content, callbacks, buffers = []) {
    this.sent.push({ content, buffers });
  }

  on(event, cb) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(cb);
  }

  off(event, cb) {
    const set = this.listeners.get(event);
    if (!set) return;
    if (cb) set.delete(cb);
    else set.clear();
  }

  emit(event, ...args) {
    for (const cb of [...(this.listeners.get(event) ?? [])]) cb(...args);
  }

  /** Deliver a custom message as anywidget would: buffers arrive as DataViews. */
  receive(content, buffers = []) {
    const views = buffers.map((b) => {
      const bytes = b instanceof Uint8Array ? b : Uint8Array.from(b);
      return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    });
    this.emit("msg:custom", content, views);
  }

  listenerCount() {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }
}

/** Load a widget module the way anywidget does: the default export is an object or a factory. */
export async function instantiate(mod) {
  const def = mod.default;
  return typeof def === "function" ? await def() : def;
}
