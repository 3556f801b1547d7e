/**
 * Formatting values for messages and `explain()`. Every function accepts
 * anything and never throws: error messages are built from caller input.
 */

/**
 * `v` as hex, zero-padded to `width` digits (`0x02000`). A value that is not
 * a non-negative integer is shown as it is (`NaN`, `-1`, `"abc"`), never as
 * `0xNaN` or `0x-1`.
 */
export function hex(v: unknown, width = 1): string {
  if ((typeof v === "number" && Number.isInteger(v) && v >= 0) || (typeof v === "bigint" && v >= 0n)) {
    return `0x${v.toString(16).padStart(width, "0")}`;
  }
  return show(v);
}

/** A short, safe rendering of any value for an error message. */
export function show(v: unknown): string {
  try {
    if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
    if (typeof v === "bigint") return `${v}n`;
    if (typeof v === "function") return `a function`;
    if (typeof v === "symbol") return v.toString();
    if (v === null || typeof v !== "object") return String(v);
    if (Array.isArray(v)) return `an array of ${v.length}`;
    const name = (v as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === "string" && name !== "Object" ? `a ${name}` : "an object";
  } catch {
    return "an unprintable value";
  }
}

/** `n` bytes in binary units with at most two decimals: `16 KiB`, `1.5 MiB`, `0 B`. */
export function humanBytes(n: number | bigint): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let value = Number(n);
  if (!Number.isFinite(value)) return show(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number(value.toFixed(2))} ${units[unit]}`;
}
