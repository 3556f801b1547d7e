/** Number formatting for `explain()`. */

/** `n` as hex, zero-padded to `width` digits: `0x02000`. */
export function hex(n: number | bigint, width = 1): string {
  return `0x${n.toString(16).padStart(width, "0")}`;
}

/** `n` bytes in binary units with at most two decimals: `16 KiB`, `1.5 MiB`, `0 B`. */
export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number(value.toFixed(2))} ${units[unit]}`;
}
