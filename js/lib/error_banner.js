// The standard error display shared by all widgets: shows the model's `error` trait.

/**
 * Append an error banner to `el` that mirrors the `error` trait. The text is set with
 * textContent, never parsed as markup. `placed(field)` says whether the view shows an error
 * about the trait `field` (the `error_field` trait) next to that field itself; the banner then
 * stays hidden.
 * @param {{ get(k: string): any, on(e: string, cb: Function): void, off(e: string, cb: Function): void }} model
 * @param {HTMLElement} el
 * @param {{ placed?: (field: string) => boolean }} [options]
 * @returns {() => void} cleanup that removes the listener
 */
export function mountErrorBanner(model, el, { placed = () => false } = {}) {
  const box = el.ownerDocument.createElement("div");
  box.className = "p2p-error";
  box.setAttribute("role", "alert");
  const update = () => {
    const message = model.get("error") || "";
    const field = model.get("error_field") || "";
    box.textContent = message;
    box.hidden = message === "" || (field !== "" && placed(field));
  };
  update();
  model.on("change:error", update);
  model.on("change:error_field", update);
  el.appendChild(box);
  return () => {
    model.off("change:error", update);
    model.off("change:error_field", update);
  };
}
