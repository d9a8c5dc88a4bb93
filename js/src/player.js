// AttentionPlayer front end: per-step x0 previews of every prompt with per-token cross-attention
// heat maps over them, streamed from the kernel while the sampler runs.
//
// Frames arrive as custom messages with binary buffers (see p2p_widgets/frames.py) and are kept
// per model in the factory closure, so every view of the model (and a view opened later) shows
// them. After a page reload `initialize` asks Python to replay what this front end lacks.
// View state (step, playing, follow, tokens, resolution, normalize, opacity, fps) lives in traits;
// the playhead is only saved on commit (pause, scrub release, key press), never per frame.
import "../lib/common.css"; // the error banner and screen-reader-only classes
import "./player.css";
import { downloadBytes } from "../lib/download.js";
import { mountErrorBanner } from "../lib/error_banner.js";
import { FrameBuffer, parseEnd, parseFrameMessage, parseRunHeader } from "../lib/framebuffer.js";
import { heatRgba, normalizeMaps, tokenLabel, tokenMap } from "../lib/heatmap.js";

const ROLE_NAMES = ["source", "edit"];

function el(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function roleName(b, n) {
  if (b === 0) return ROLE_NAMES[0];
  return n > 2 ? `edit ${b}` : ROLE_NAMES[1];
}

function context2d(canvas) {
  try {
    return canvas.getContext ? canvas.getContext("2d") : null;
  } catch {
    return null;
  }
}

export default () => {
  const buffer = new FrameBuffer();
  /** decoded previews, shared by the views: key "run:step:b" -> Promise<ImageBitmap | null> */
  const bitmaps = new Map();

  function dropBitmaps() {
    for (const p of bitmaps.values()) p.then((bmp) => bmp && bmp.close && bmp.close()).catch(() => {});
    bitmaps.clear();
  }

  function bitmapFor(frame, b) {
    const key = `${frame.run}:${frame.step}:${b}`;
    let p = bitmaps.get(key);
    if (!p) {
      p =
        typeof createImageBitmap === "function"
          ? createImageBitmap(new Blob([frame.images[b]], { type: frame.mime })).catch(() => null)
          : Promise.resolve(null);
      bitmaps.set(key, p);
    }
    return p;
  }

  return {
    initialize({ model }) {
      const onMessage = (msg, buffers) => {
        if (!msg || typeof msg.type !== "string") return;
        try {
          if (msg.type === "run") {
            if (buffer.begin(parseRunHeader(msg))) dropBitmaps();
          } else if (msg.type === "frame") {
            buffer.add(parseFrameMessage(msg, buffers));
          } else if (msg.type === "end") {
            buffer.finish(parseEnd(msg));
          } else if (msg.type === "clear") {
            buffer.clear(Number.isInteger(msg.run) ? msg.run : null);
            dropBitmaps();
          } else if (msg.type === "download") {
            if (!buffers || buffers.length !== 1) throw new TypeError("a download carries one buffer");
            downloadBytes(globalThis.document, buffers[0], msg.name, msg.mime);
          }
        } catch (err) {
          model.send({ type: "client_error", message: `${msg.type}: ${err.message}` });
        }
      };
      model.on("msg:custom", onMessage);
      // a fresh front end (first display or a reloaded page) asks for the frames it lacks
      model.send({ type: "replay", run: buffer.run, have: buffer.steps.slice() });
      return () => {
        model.off("msg:custom", onMessage);
        dropBitmaps();
      };
    },

    render({ model, el: host }) {
      const doc = host.ownerDocument;
      const win = doc.defaultView || globalThis;
      const root = el(doc, "div", "p2p-player");
      root.tabIndex = 0;
      root.setAttribute("role", "group");
      root.setAttribute("aria-label", "attention playback");
      root.setAttribute("data-lm-suppress-shortcuts", "true");

      // -- controls --
      const bar = el(doc, "div", "p2p-player__bar");
      const playButton = el(doc, "button", "p2p-btn p2p-player__play", "Play");
      playButton.type = "button";
      playButton.setAttribute("aria-label", "play");
      const slider = el(doc, "input", "p2p-player__slider");
      slider.type = "range";
      slider.min = "0";
      slider.max = "0";
      slider.step = "1";
      slider.value = "0";
      slider.setAttribute("aria-label", "step");
      const stepLabel = el(doc, "span", "p2p-player__step", "no frames yet");
      const followLabel = el(doc, "label", "p2p-player__follow");
      const followBox = el(doc, "input");
      followBox.type = "checkbox";
      followLabel.append(followBox, doc.createTextNode(" follow live"));
      bar.append(playButton, slider, stepLabel, followLabel);

      const opts = el(doc, "div", "p2p-player__opts");
      const resLabel = el(doc, "label", "", "maps ");
      const resSelect = el(doc, "select", "p2p-btn p2p-player__resolution");
      resLabel.append(resSelect);
      const normLabel = el(doc, "label", "", "scale ");
      const normSelect = el(doc, "select", "p2p-btn p2p-player__normalize");
      for (const [value, text] of [
        ["token", "per token"],
        ["global", "shared (global)"],
      ]) {
        const o = el(doc, "option", "", text);
        o.value = value;
        normSelect.append(o);
      }
      normLabel.append(normSelect);
      const opLabel = el(doc, "label", "", "overlay ");
      const opacity = el(doc, "input", "p2p-player__opacity");
      opacity.type = "range";
      opacity.min = "0";
      opacity.max = "1";
      opacity.step = "0.05";
      opLabel.append(opacity);
      const headsNote = el(doc, "span", "p2p-player__note", "heads: mean");
      headsNote.title = "maps are averaged over attention heads and over the layers of each grid";
      const gifButton = el(doc, "button", "p2p-btn p2p-player__gif", "Save GIF");
      gifButton.type = "button";
      opts.append(resLabel, normLabel, opLabel, headsNote, gifButton);

      const rows = el(doc, "div", "p2p-player__rows");
      const empty = el(doc, "p", "p2p-player__empty", "Waiting for a run: frames appear here while the sampler runs.");
      const live = el(doc, "div", "p2p-sr-only");
      live.setAttribute("aria-live", "polite");
      live.setAttribute("role", "status");
      root.append(bar, opts, rows, empty, live);
      host.appendChild(root);
      const removeBanner = mountErrorBanner(model, root);

      // -- local view state --
      let cursor = Number.isInteger(model.get("step")) ? model.get("step") : 0;
      let follow = model.get("follow") !== false;
      let timer = null;
      let raf = null;
      let drawToken = 0;
      let structureKey = "";
      let tempOpacity = null;
      /** @type {{b: number, preview: HTMLCanvasElement, tiles: {pos: number, canvas: HTMLCanvasElement}[]}[]} */
      let tiles = [];
      const scratch = doc.createElement("canvas");

      const announce = (text) => {
        live.textContent = "";
        live.textContent = text;
      };
      const nEvals = () => (buffer.header && buffer.header.nEvals) || model.get("n_evals") || 0;
      const selected = () => (Array.isArray(model.get("tokens")) ? model.get("tokens") : []);
      const commit = (changes) => {
        for (const [k, v] of Object.entries(changes)) model.set(k, v);
        model.save_changes();
      };

      function rebuild() {
        const header = buffer.header;
        const prompts = header && header.prompts.length ? header.prompts : model.get("prompts") || [];
        const sel = selected();
        const key = JSON.stringify([header ? header.run : null, prompts.map((p) => p.tokens), sel]);
        if (key === structureKey) return;
        structureKey = key;
        rows.replaceChildren();
        tiles = [];
        prompts.forEach((prompt, b) => {
          const row = el(doc, "div", "p2p-player__row");
          row.dataset.prompt = String(b);
          const head = el(doc, "div", "p2p-player__head");
          head.append(el(doc, "span", "p2p-player__role", roleName(b, prompts.length)));
          head.append(el(doc, "span", "p2p-player__prompt", prompt.text));
          const strip = el(doc, "div", "p2p-player__tiles");
          const preview = el(doc, "canvas", "p2p-player__canvas p2p-player__canvas--preview");
          preview.setAttribute("role", "img");
          preview.setAttribute("aria-label", `${roleName(b, prompts.length)} x0 prediction`);
          const fig = el(doc, "figure", "p2p-player__tile");
          fig.append(preview, el(doc, "figcaption", "", "x0"));
          strip.append(fig);
          const entry = { b, preview, tiles: [] };
          for (const [pb, pos] of sel) {
            if (pb !== b || pos >= prompt.tokens.length) continue;
            const canvas = el(doc, "canvas", "p2p-player__canvas p2p-player__canvas--heat");
            canvas.dataset.token = String(pos);
            const label = tokenLabel(prompt.tokens, pos);
            canvas.setAttribute("role", "img");
            canvas.setAttribute("aria-label", `attention of "${label}"`);
            const tf = el(doc, "figure", "p2p-player__tile");
            tf.append(canvas, el(doc, "figcaption", "", label));
            strip.append(tf);
            entry.tiles.push({ pos, canvas });
          }
          const chips = el(doc, "div", "p2p-player__chips");
          chips.setAttribute("role", "group");
          chips.setAttribute("aria-label", `tokens of the ${roleName(b, prompts.length)} prompt`);
          prompt.tokens.forEach((_, pos) => {
            const chip = el(doc, "button", "p2p-btn p2p-player__chip", tokenLabel(prompt.tokens, pos));
            chip.type = "button";
            chip.dataset.prompt = String(b);
            chip.dataset.token = String(pos);
            const on = sel.some(([sb, sp]) => sb === b && sp === pos);
            chip.setAttribute("aria-pressed", on ? "true" : "false");
            chips.append(chip);
          });
          row.append(head, strip, chips);
          rows.append(row);
          tiles.push(entry);
        });
      }

      function syncResolutions(frame) {
        const grids = frame ? frame.grids.map((g) => [g.h, g.w]) : model.get("grids") || [];
        const want = ["0", ...grids.map((g) => String(Math.max(g[0], g[1])))];
        const have = [...resSelect.options].map((o) => o.value);
        if (want.join() !== have.join()) {
          resSelect.replaceChildren();
          for (const v of want) {
            const g = grids.find((x) => String(Math.max(x[0], x[1])) === v);
            const o = el(doc, "option", "", v === "0" ? "all grids (mean)" : `${g[0]}×${g[1]}`);
            o.value = v;
            resSelect.append(o);
          }
        }
        resSelect.value = String(model.get("resolution") || 0);
      }

      function drawFrame(frame) {
        const token = ++drawToken;
        const side = model.get("resolution") || 0;
        const mode = model.get("normalize") === "global" ? "global" : "token";
        const alpha = tempOpacity ?? (Number.isFinite(model.get("opacity")) ? model.get("opacity") : 0.6);
        const [H, W] = frame.imageSize;
        // maps of every selected token, normalised together so "global" compares across prompts
        const wanted = [];
        for (const entry of tiles) {
          for (const t of entry.tiles) if (entry.b < frame.nImages && t.pos < frame.tokens) wanted.push([entry, t]);
        }
        const maps = wanted.map(([entry, t]) => tokenMap(frame, entry.b, t.pos, side));
        const values = normalizeMaps(maps, mode);
        const heat = new Map();
        wanted.forEach(([, t], k) => heat.set(t, { map: maps[k], values: values[k] }));
        for (const entry of tiles) {
          const canvases = [entry.preview, ...entry.tiles.map((t) => t.canvas)];
          for (const c of canvases) {
            if (c.width !== W) c.width = W;
            if (c.height !== H) c.height = H;
            c.dataset.step = String(frame.step);
          }
          for (const t of entry.tiles) {
            const h = heat.get(t);
            t.canvas.dataset.peak = h ? String(Math.max(0, ...h.map.data)) : "0";
          }
          if (entry.b >= frame.nImages) continue;
          bitmapFor(frame, entry.b).then((bmp) => {
            if (token !== drawToken) return; // a newer draw started
            for (const c of canvases) {
              const ctx = context2d(c);
              if (!ctx) continue;
              ctx.imageSmoothingEnabled = false;
              ctx.globalAlpha = 1;
              ctx.clearRect(0, 0, W, H);
              if (bmp) ctx.drawImage(bmp, 0, 0, W, H);
              const t = entry.tiles.find((x) => x.canvas === c);
              const h = t && heat.get(t);
              if (h && typeof ImageData !== "undefined") {
                scratch.width = h.map.w;
                scratch.height = h.map.h;
                const sctx = context2d(scratch);
                if (sctx) {
                  sctx.putImageData(new ImageData(heatRgba(h.values), h.map.w, h.map.h), 0, 0);
                  ctx.globalAlpha = alpha;
                  ctx.drawImage(scratch, 0, 0, W, H);
                  ctx.globalAlpha = 1;
                }
              }
              c.dataset.drawnStep = String(frame.step);
            }
          });
        }
      }

      function draw() {
        raf = null;
        rebuild();
        const n = nEvals();
        const frame = buffer.at(cursor);
        syncResolutions(frame);
        normSelect.value = model.get("normalize") === "global" ? "global" : "token";
        opacity.value = String(tempOpacity ?? model.get("opacity") ?? 0.6);
        slider.max = String(Math.max(n - 1, buffer.latest() ?? 0, 0));
        slider.value = String(cursor);
        slider.disabled = buffer.size === 0;
        followBox.checked = follow;
        const playing = timer !== null;
        playButton.textContent = playing ? "Pause" : "Play";
        playButton.setAttribute("aria-label", playing ? "pause" : "play");
        playButton.setAttribute("aria-pressed", playing ? "true" : "false");
        gifButton.disabled = buffer.size === 0;
        empty.hidden = buffer.size > 0 || (buffer.header && buffer.header.prompts.length > 0);
        root.dataset.frames = String(buffer.size);
        root.dataset.run = String(buffer.run ?? "");
        root.dataset.status = buffer.end ? buffer.end.status : buffer.header ? "running" : "idle";
        if (!frame) {
          stepLabel.textContent = buffer.header ? "waiting for the first step…" : "no frames yet";
          return;
        }
        const total = n ? ` / ${n}` : "";
        const shown = frame.step === cursor ? "" : ` (showing ${frame.step})`;
        const state = buffer.end ? (buffer.end.status === "done" ? "" : ` · ${buffer.end.status}`) : " · live";
        stepLabel.textContent = `step ${cursor + 1}${total}${shown} · t=${frame.timestep}${state}`;
        root.dataset.shownStep = String(frame.step);
        drawFrame(frame);
      }

      function schedule() {
        if (raf !== null) return;
        if (typeof win.requestAnimationFrame === "function") raf = win.requestAnimationFrame(draw);
        else raf = win.setTimeout(draw, 0);
      }

      function cancelScheduled() {
        if (raf === null) return;
        if (typeof win.cancelAnimationFrame === "function") win.cancelAnimationFrame(raf);
        win.clearTimeout(raf);
        raf = null;
      }

      function seek(step, save = true) {
        if (step === null || step === undefined) return;
        const max = Math.max(nEvals() - 1, buffer.latest() ?? 0, 0);
        cursor = Math.max(0, Math.min(max, step));
        if (follow) {
          follow = false;
          model.set("follow", false);
        }
        if (save) commit({ step: cursor });
        draw();
      }

      function stopTimer() {
        if (timer !== null) win.clearInterval(timer);
        timer = null;
      }

      function tick() {
        const next = buffer.next(cursor);
        if (next !== null) {
          cursor = next;
          schedule();
        } else if (buffer.end || !buffer.header) {
          stopTimer();
          commit({ playing: false, step: cursor });
          announce(`paused at step ${cursor + 1}`);
          schedule();
        }
      }

      function startTimer() {
        stopTimer();
        const fps = Number.isFinite(model.get("fps")) ? model.get("fps") : 6;
        timer = win.setInterval(tick, Math.max(16, 1000 / Math.max(0.5, fps)));
      }

      function setPlaying(on, save = true) {
        if (on) {
          if (buffer.size === 0) return;
          if (buffer.next(cursor) === null && buffer.end) cursor = buffer.first();
          if (follow) {
            follow = false;
            model.set("follow", false);
          }
          startTimer();
          if (save) commit({ playing: true });
          announce("playing");
        } else {
          stopTimer();
          if (save) commit({ playing: false, step: cursor });
          announce(`paused at step ${cursor + 1}`);
        }
        draw();
      }

      // -- events --
      const onBuffer = (kind) => {
        if (kind === "run") {
          cursor = 0;
          structureKey = "";
        } else if (kind === "frame" && follow && timer === null) {
          cursor = buffer.latest();
        }
        schedule();
      };
      const unsubscribe = buffer.subscribe(onBuffer);

      const onKey = (e) => {
        if (e.target === slider && e.key.startsWith("Arrow")) return; // the range input moves itself
        const tag = e.target && e.target.tagName;
        if (tag === "SELECT" || (tag === "INPUT" && e.target !== slider && e.target.type !== "checkbox")) return;
        let handled = true;
        if (e.key === "ArrowRight" || e.key === "ArrowUp") seek(buffer.next(cursor) ?? cursor);
        else if (e.key === "ArrowLeft" || e.key === "ArrowDown") seek(buffer.prev(cursor) ?? cursor);
        else if (e.key === "Home") seek(buffer.first() ?? 0);
        else if (e.key === "End") seek(buffer.latest() ?? 0);
        else if ((e.key === " " || e.key === "k") && tag !== "BUTTON") setPlaying(timer === null);
        else handled = false;
        if (handled) {
          e.preventDefault();
          e.stopPropagation();
          if (e.key !== " " && e.key !== "k") announce(stepLabel.textContent);
        }
      };
      const onClick = (e) => {
        const target = e.target;
        if (!(target instanceof win.Element)) return;
        if (target === playButton) return setPlaying(timer === null);
        if (target === gifButton) {
          model.send({ type: "export_gif" });
          announce("GIF requested");
          return;
        }
        const chip = target.closest(".p2p-player__chip");
        if (chip) {
          const b = Number(chip.dataset.prompt);
          const pos = Number(chip.dataset.token);
          const sel = selected().filter(([sb, sp]) => !(sb === b && sp === pos));
          const on = sel.length === selected().length;
          if (on) sel.push([b, pos]);
          sel.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
          commit({ tokens: sel });
          announce(`${chip.textContent} ${on ? "shown" : "hidden"}`);
        }
      };
      const onSliderInput = () => seek(Number(slider.value), false);
      const onSliderChange = () => commit({ step: cursor });
      const onFollow = () => {
        follow = followBox.checked;
        if (follow) {
          stopTimer();
          if (buffer.latest() !== null) cursor = buffer.latest();
          commit({ follow: true, playing: false });
        } else commit({ follow: false });
        draw();
      };
      const onRes = () => commit({ resolution: Number(resSelect.value) });
      const onNorm = () => commit({ normalize: normSelect.value });
      const onOpacityInput = () => {
        tempOpacity = Number(opacity.value);
        schedule();
      };
      const onOpacityChange = () => {
        const v = Number(opacity.value);
        tempOpacity = null;
        commit({ opacity: v });
      };

      root.addEventListener("keydown", onKey);
      root.addEventListener("click", onClick);
      slider.addEventListener("input", onSliderInput);
      slider.addEventListener("change", onSliderChange);
      followBox.addEventListener("change", onFollow);
      resSelect.addEventListener("change", onRes);
      normSelect.addEventListener("change", onNorm);
      opacity.addEventListener("input", onOpacityInput);
      opacity.addEventListener("change", onOpacityChange);

      const traitHandlers = [
        [
          "change:step",
          () => {
            const s = model.get("step");
            if (Number.isInteger(s) && s !== cursor) {
              cursor = s;
              schedule();
            }
          },
        ],
        [
          "change:playing",
          () => {
            const on = model.get("playing") === true;
            if (on !== (timer !== null)) setPlaying(on, false);
          },
        ],
        [
          "change:follow",
          () => {
            follow = model.get("follow") !== false;
            if (follow && buffer.latest() !== null && timer === null) cursor = buffer.latest();
            schedule();
          },
        ],
        ["change:fps", () => timer !== null && startTimer()],
        ["change:tokens", schedule],
        ["change:prompts", schedule],
        ["change:grids", schedule],
        ["change:resolution", schedule],
        ["change:normalize", schedule],
        ["change:opacity", schedule],
        ["change:n_evals", schedule],
      ];
      for (const [event, fn] of traitHandlers) model.on(event, fn);

      if (model.get("playing") === true && buffer.size > 0) startTimer();
      else if (follow && buffer.latest() !== null) cursor = buffer.latest();
      draw();

      return () => {
        unsubscribe();
        stopTimer();
        cancelScheduled();
        drawToken++;
        for (const [event, fn] of traitHandlers) model.off(event, fn);
        root.removeEventListener("keydown", onKey);
        root.removeEventListener("click", onClick);
        slider.removeEventListener("input", onSliderInput);
        slider.removeEventListener("change", onSliderChange);
        followBox.removeEventListener("change", onFollow);
        resSelect.removeEventListener("change", onRes);
        normSelect.removeEventListener("change", onNorm);
        opacity.removeEventListener("input", onOpacityInput);
        opacity.removeEventListener("change", onOpacityChange);
        removeBanner();
        root.remove();
      };
    },
  };
};
