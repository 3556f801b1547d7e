/**
 * The mmap decision on 16 KiB pages, shared by the arm64-16k (GICv3 ITS)
 * and arm64-16k-gicv2m (no isolation) suites. Expected ranges are computed
 * here from sysfs (BAR sizes, the MSI-X capability in the config bytes) and
 * the kernel's page size, never from the planner.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "bun:test";
import type { PciDevice } from "../../src/index.ts";
import { barSizes, msixFromSysfs } from "./ground-truth.ts";

/** The page-aligned hole holding the MSI-X table and PBA of `bdf` in its table BAR. */
export function msixHole(bdf: string, page: number): { start: number; end: number } {
  const m = msixFromSysfs(bdf)!;
  const tableEnd = m.tableOffset + 16 * m.vectors;
  const pbaEnd = m.pbaOffset + 8 * Math.ceil(m.vectors / 64);
  const start = Math.floor(Math.min(m.tableOffset, m.pbaOffset) / page) * page;
  const end = Math.ceil(Math.max(tableEnd, pbaEnd) / page) * page;
  return { start, end };
}

/** Ranges as [start, end, access] triples. */
export function triples(ranges: readonly { start: number; end: number; access: string }[]): [number, number, string][] {
  return ranges.map((r) => [r.start, r.end, r.access]);
}

/** The expected strict (rule 4) ranges of a BAR: mmap around the MSI-X hole, trap the hole. */
export function holeRanges(bdf: string, bar: number, page: number): [number, number, string][] {
  const size = barSizes(bdf)[bar]!;
  const { start, end } = msixHole(bdf, page);
  const out: [number, number, string][] = [];
  if (start > 0) out.push([0, start, "mmap"]);
  out.push([start, Math.min(end, size), "trap"]);
  if (end < size) out.push([end, size, "mmap"]);
  return out;
}

/** Write a plan's explain() to the results share (the README quotes them) and print it. */
export function keepExplain(name: string, text: string): void {
  const dir = process.env.BUN_VFIO_RESULTS;
  if (dir) writeFileSync(join(dir, `explain-${name}.txt`), `${text}\n`);
  console.log(`--- explain ${name} ---\n${text}`);
}

/** nvme registers read right through whatever the plan chose: VS = 1.4.0, and CAP equals pread's. */
export function checkNvmeRegisters(dev: PciDevice, bar: { read32(o: number): number; read64(o: number): bigint }): void {
  expect(bar.read32(0x08)).toBe(0x10400);
  expect(bar.read64(0x00)).toBe(dev.region(0).read64(0x00));
}
