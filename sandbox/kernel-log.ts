/**
 * Pick the kernel messages worth showing after a failed guest run.
 */
import { existsSync, readFileSync } from "node:fs";

/**
 * Warnings and errors (`/proc/kmsg` level 0-4) that mention VFIO, DMAR,
 * the IOMMU or PCI, plus any message about a fault, from a guest kernel log
 * as streamed from `/proc/kmsg` (`<level>[time] text`). The level prefix is
 * dropped. Returns the last `max` of them; empty when the log is missing.
 * @param path the run's kernel log
 * @param max how many lines to keep (default 15)
 */
export function kernelHighlights(path: string, max = 15): string[] {
  if (!existsSync(path)) return [];
  const out: string[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const m = /^<(\d+)>(.*)$/.exec(line);
    if (!m) continue;
    const level = Number(m[1]) & 7;
    const text = m[2]!;
    const topical = /vfio|dmar|iommu|pci|msi/i.test(text);
    if ((level <= 4 && topical) || /\bfault/i.test(text)) out.push(text);
  }
  return out.slice(-max);
}
