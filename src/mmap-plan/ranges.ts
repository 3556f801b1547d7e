/**
 * Interval helpers for the planner. A plan starts as one range covering the
 * BAR and is then "painted": each paint overwrites `[start, end)` with a new
 * access and reason, so later, more specific facts win over earlier ones and
 * the ranges always tile the BAR.
 */
import type { PlanRange } from "./types.ts";

/** Round `n` down to a multiple of the power-of-two `page`. */
export function pageFloor(n: number, page: number): number {
  return Math.floor(n / page) * page;
}

/** Round `n` up to a multiple of the power-of-two `page`. */
export function pageCeil(n: number, page: number): number {
  return Math.ceil(n / page) * page;
}

/** Overwrite `[start, end)` (clipped to the BAR) with `access`/`reason`, keeping the tiling. */
export function paint(ranges: PlanRange[], start: number, end: number, access: PlanRange["access"], reason: string): PlanRange[] {
  const barEnd = ranges.length ? ranges[ranges.length - 1]!.end : 0;
  const from = Math.max(0, start);
  const to = Math.min(barEnd, end);
  if (from >= to) return ranges;
  const out: PlanRange[] = [];
  for (const r of ranges) {
    if (r.end <= from || r.start >= to) {
      out.push(r);
      continue;
    }
    if (r.start < from) out.push({ ...r, end: from });
    if (r.end > to) out.push({ ...r, start: to });
  }
  out.push({ start: from, end: to, access, reason });
  return out.sort((a, b) => a.start - b.start);
}

/** Join neighbours that share access and reason, so each fact is stated once. */
export function mergeAdjacent(ranges: PlanRange[]): PlanRange[] {
  const out: PlanRange[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && last.end === r.start && last.access === r.access && last.reason === r.reason) last.end = r.end;
    else out.push({ ...r });
  }
  return out;
}

/** Union of `[start, end)` intervals: sorted, overlapping and touching ones joined, empty ones dropped. */
export function unionIntervals(intervals: { start: number; end: number }[]): { start: number; end: number }[] {
  const sorted = intervals.filter((i) => i.end > i.start).sort((a, b) => a.start - b.start);
  const out: { start: number; end: number }[] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && i.start <= last.end) last.end = Math.max(last.end, i.end);
    else out.push({ ...i });
  }
  return out;
}

/** Total bytes of the ranges with the given access. */
export function bytesWith(ranges: PlanRange[], access: PlanRange["access"]): number {
  return ranges.reduce((sum, r) => sum + (r.access === access ? r.end - r.start : 0), 0);
}
