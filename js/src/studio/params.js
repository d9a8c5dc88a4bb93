// A rule's declared parameters (Python's Param.describe(): name, kind, default, help, low, high,
// choices, optional) as form controls' text and back (no DOM). Python checks every value.

/** @typedef {{name: string, kind: "float"|"int"|"bool"|"choice"|"words", default: any, help: string,
 *   low: number|null, high: number|null, choices: any[], optional: boolean}} ParamInfo */

/** A parameter name as words: "start_step" -> "start step". */
export function paramLabel(name) {
  return String(name).replace(/_/g, " ");
}

/** The range of a number parameter in words ("0 to 1", "at least 0", ""), for its description. */
export function rangeText(param) {
  const { low, high } = param;
  const has = (x) => x !== null && x !== undefined;
  if (has(low) && has(high)) return `${low} to ${high}`;
  if (has(low)) return `at least ${low}`;
  if (has(high)) return `at most ${high}`;
  return "";
}

/** The description under a parameter's control: its help, its range, whether it may be empty. */
export function describeParam(param) {
  const parts = [];
  if (param.help) parts.push(param.help);
  const range = param.kind === "int" || param.kind === "float" ? rangeText(param) : "";
  if (range) parts.push(`${param.kind === "int" ? "whole number, " : ""}${range}`);
  else if (param.kind === "int") parts.push("whole number");
  if (param.kind === "words") parts.push("words separated by spaces or commas");
  return parts.join(" · ");
}

/** Whether a number parameter gets a slider beside its field (bounded floats: fractions, scales). */
export function hasSlider(param) {
  return param.kind === "float" && typeof param.low === "number" && typeof param.high === "number" && param.high > param.low;
}

/** The text a control shows for `value`. */
export function formatParam(param, value) {
  if (value === null || value === undefined) return "";
  if (param.kind === "words") return (Array.isArray(value) ? value : [value]).join(" ");
  return String(value);
}

/** Words typed into a words field: split on spaces and commas, empty parts dropped. */
export function parseWords(text) {
  return String(text)
    .split(/[\s,]+/)
    .filter((w) => w !== "");
}

/**
 * The value to send for the text (or checkbox state) of a parameter's control. Empty numbers are
 * null (Python says whether the parameter may be empty); text that is not a number goes as it is,
 * so Python's message names it.
 */
export function parseParam(param, text, checked = false) {
  if (param.kind === "bool") return checked === true;
  if (param.kind === "words") return parseWords(text);
  if (param.kind === "choice") {
    const hit = (param.choices || []).find((c) => String(c) === String(text));
    return hit === undefined ? String(text) : hit;
  }
  const trimmed = String(text).trim();
  if (trimmed === "") return null;
  const n = Number(trimmed);
  return Number.isFinite(n) ? n : trimmed;
}

/** The step of a number field: 1 for whole numbers, else a hundredth of the range (or "any"). */
export function stepOf(param) {
  if (param.kind === "int") return "1";
  if (hasSlider(param)) return String((param.high - param.low) / 100);
  return "any";
}

/** The placeholder of an empty field: "needed" for a value only the user can give (declared
 * without a default), "empty" where empty is allowed (optional), else nothing. */
export function placeholderOf(param) {
  if (param.optional) return "empty";
  return param.default === null || param.default === undefined ? "needed" : "";
}
