// Screen-reader announcements shared by the editing widgets.

/**
 * Append a visually hidden polite live region to `el`.
 * @param {HTMLElement} el
 * @returns {{ node: HTMLElement, announce(text: string): void }}
 */
export function createAnnouncer(el) {
  const node = el.ownerDocument.createElement("div");
  node.className = "p2p-sr-only p2p-live";
  node.setAttribute("aria-live", "polite");
  node.setAttribute("role", "status");
  el.appendChild(node);
  return {
    node,
    announce(text) {
      // replacing the text node makes repeated identical messages audible again
      node.textContent = "";
      node.textContent = String(text);
    },
  };
}
