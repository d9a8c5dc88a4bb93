// JSDoc types of the widgets' synced traits, read from the Python widgets in
// p2p_widgets/widgets/*.py (every trait tagged sync=True). Keep them in step with Python: the names
// here are the names the views `model.get` and `model.set`. Types only; this module exports nothing.
//
// Python's `None` arrives as null; bytes traits arrive as a DataView (anywidget) or a typed array.

/**
 * The anywidget model proxy a view gets, typed by its traits.
 * @template T
 * @typedef {{
 *   get<K extends keyof T>(key: K): T[K],
 *   set<K extends keyof T>(key: K, value: T[K]): void,
 *   save_changes(): void,
 *   send(content: object, callbacks?: unknown, buffers?: ArrayBuffer[]): void,
 *   on(event: string, fn: Function): void,
 *   off(event: string, fn?: Function): void,
 * }} Model
 */

/**
 * Every widget (P2PWidget in widgets/_base.py).
 * @typedef {Object} BaseTraits
 * @property {string} error  last error shown by the front end; "" when none
 * @property {string} error_field  the trait the error is about ("" for none): shown next to its control
 */

/** @typedef {"auto" | "replace" | "refine"} AlignKind */

/**
 * A token as Python's token_rows() sends it (widgets/aligner.py).
 * @typedef {Object} TokenRow
 * @property {number} pos        position as the engine counts it (BOS is 0)
 * @property {string} text       decoded token text
 * @property {number} word       word index, -1 for BOS/EOS
 * @property {string} word_text  the whole word, "" for BOS/EOS
 * @property {"" | "bos" | "eos"} special
 */

/**
 * TokenAligner (widgets/aligner.py).
 * @typedef {BaseTraits & {
 *   source: string,
 *   target: string,
 *   source_tokens: TokenRow[],
 *   target_tokens: TokenRow[],
 *   links: Array<[number, number, number]>,
 *   show_special: boolean,
 *   kind: AlignKind,
 * }} AlignerTraits
 * `links`: [source pos, target pos, weight], sorted, no duplicates (computed tokens come from Python).
 */

/**
 * Alpha windows in evaluations: [start, end) per row, per-word rows, the LocalBlend start.
 * @typedef {{
 *   cross: [number, number],
 *   self_attn: [number, number],
 *   words?: Array<[string, number, number]>,
 *   blend_start: number,
 * }} Windows
 */

/**
 * AlphaTimeline (widgets/timeline.py).
 * @typedef {BaseTraits & {
 *   target: string,
 *   words: string[],
 *   timesteps: number[],
 *   n_evals: number,
 *   windows: Windows,
 *   playhead: number | null,
 *   rule_windows: Array<{rule: string, what: string, start: number, end: number}>,
 * }} TimelineTraits
 */

/**
 * AttentionPlayer (widgets/player.py).
 * @typedef {BaseTraits & {
 *   status: "idle" | "running" | "done" | "stopped" | "error",
 *   run_id: number,
 *   n_evals: number,
 *   prompts: Array<{text: string, tokens: string[]}>,
 *   grids: Array<[number, number]>,
 *   step: number,
 *   playing: boolean,
 *   follow: boolean,
 *   tokens: Array<[number, number]>,
 *   resolution: number,
 *   normalize: "token" | "global",
 *   opacity: number,
 *   fps: number,
 *   unet_cells: Array<{name: string, kind: "self" | "cross" | "feature", block: string, depth: number}>,
 *   controlled: number[][],
 * }} PlayerTraits
 * `tokens`: selected [prompt index, token position]; `resolution`: grid side, 0 = every grid averaged.
 */

/**
 * StudioPanel (widgets/studio.py).
 * @typedef {BaseTraits & {
 *   source: string,
 *   target: string,
 *   seed: number,
 *   steps: number,
 *   guidance: number,
 *   kind: AlignKind,
 *   windows: Windows,
 *   reweight: Object<string, number>,
 *   blend_words: string[],
 *   blend_threshold: number,
 *   baseline: boolean,
 *   invert_method: string,
 *   invert_choices: Array<[string, string]>,
 *   scheduler: string,
 *   scheduler_choices: Array<[string, string]>,
 *   n_evals: number,
 *   source_words: string[],
 *   target_words: string[],
 *   has_aligner: boolean,
 *   has_timeline: boolean,
 *   status: "idle" | "running" | "stopping" | "done" | "stopped" | "error",
 *   progress: [number, number],
 *   images: Array<{label: string, name: string, png: DataView}>,
 *   spec_json: string,
 *   model_name: string,
 *   input_image: DataView,
 *   input_name: string,
 *   phase: string,
 * }} StudioTraits
 * `progress`: [steps done, evaluations]; `input_image`: PNG bytes, empty when no real image.
 */

/**
 * PingWidget (widgets/ping.py).
 * @typedef {BaseTraits & { label: string, count: number }} PingTraits
 */

export {};
