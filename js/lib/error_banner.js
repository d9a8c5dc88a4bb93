// The standard error display shared by all widgets: shows the model's `error` trait.

/**
 * Append an error banner to `el` that mirrors the `error` trait. The text is set with
 * textContent, never parsed as markup.
 * @param {{ get(k: string): any, on(e: string, cb: Function): void, off(e: string, cb: Function): void }} model
 * @param {HTMLElement} el
 * @returns {() => void} cleanup that removes the listener
 */
export function mountErrorBanner(model, el) {
  const box = el.ownerDocument.createElement("div");
  box.className = "p2p-error";
  box.setAttribute("role", "alert");
  const update = () => {
    const message = model.get("error") || "";
    box.textContent = message;
    box.hidden = message === "";
  };
  update();
  model.on("change:error", update);
  el.appendChild(box);
  return () => model.off("change:error", update);
}
