// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { downloadBytes, listenForDownloads, saveDownloadMessage } from "../lib/download.js";
import { FakeModel } from "./fake-model.js";

let saved;
let orig;
beforeEach(() => {
  saved = [];
  orig = HTMLAnchorElement.prototype.click;
  HTMLAnchorElement.prototype.click = function () {
    saved.push({ download: this.download, href: this.href, attached: document.body.contains(this) });
  };
});
afterEach(() => {
  HTMLAnchorElement.prototype.click = orig;
});

describe("download helper", () => {
  it("offers bytes through a temporary anchor and removes it", () => {
    const a = downloadBytes(document, new Uint8Array([1, 2, 3]), "x.bin", "application/octet-stream");
    expect(saved).toEqual([{ download: "x.bin", href: a.href, attached: true }]);
    expect(a.href).toMatch(/^blob:/);
    expect(document.body.contains(a)).toBe(false);
  });

  it("refuses unsafe names", () => {
    expect(() => downloadBytes(document, "x", "../etc/passwd", "text/plain")).toThrow(/unsafe file name/);
    expect(saved).toEqual([]);
  });

  it("a download message needs exactly one buffer", () => {
    expect(() => saveDownloadMessage(document, { name: "a.gif" }, [])).toThrow(/one buffer/);
    saveDownloadMessage(document, { name: "a.gif", mime: "image/gif" }, [new DataView(new ArrayBuffer(2))]);
    expect(saved.map((s) => s.download)).toEqual(["a.gif"]);
  });

  it("listenForDownloads saves download messages, reports bad ones, ignores others, and cleans up", () => {
    const model = new FakeModel();
    const stop = listenForDownloads(model);
    model.receive({ type: "download", name: "p2p_playback.gif", mime: "image/gif" }, [Uint8Array.from([71, 73, 70])]);
    model.receive({ type: "download", name: "bad/name", mime: "text/plain" }, [Uint8Array.from([1])]);
    model.receive({ type: "download", name: "two.bin" }, [Uint8Array.from([1]), Uint8Array.from([2])]);
    model.receive({ type: "frame" });
    expect(saved.map((s) => s.download)).toEqual(["p2p_playback.gif"]);
    expect(model.sent.map((m) => m.content.type)).toEqual(["client_error", "client_error"]);
    expect(model.sent[0].content.message).toMatch(/^download: unsafe file name/);
    expect(model.sent[1].content.message).toBe("download: a download carries one buffer");
    stop();
    expect(model.listenerCount()).toBe(0);
  });
});
