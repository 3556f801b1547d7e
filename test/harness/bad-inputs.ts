/**
 * The bad-input campaign, generated: every public method that takes a
 * value, called with every value that is wrong for that slot. Each call
 * must throw a VfioError with a hint; anything else (a TypeError, a
 * RangeError, a normal return, a crash) is a finding. The same generator
 * runs on the fake kernel (test/unit) and against real vfio-pci in the
 * guest (test/vm/remap), which prints its counts.
 */
import { chooseBackend, DmaBuffer, openVfio, VfioError, type Bar, type Container, type Group, type Iommufd, type IovaAllocator, type IrqVector, type PciDevice, type Region } from "../../src/index.ts";

/** What the campaign calls methods on. */
export interface Targets {
  container: Container;
  group: Group;
  dev: PciDevice;
  bar: Bar;
  region: Region;
  buffer: DmaBuffer;
  allocator: IovaAllocator;
  vector: IrqVector;
}

const sym = Symbol("bad");
/** Wrong as an offset, index or count (a non-negative integer number). */
const NOT_INDEX: unknown[] = [undefined, null, Number.NaN, -1, 1.5, Infinity, "abc", "0x10", {}, [], () => 0, 5n, 2n ** 64n, sym, 2 ** 53];
/** Wrong as a register value of 8/16/32 bits. */
const notValue = (bits: number): unknown[] => [undefined, null, Number.NaN, 1.5, "abc", {}, [], 5n, 2 ** bits, -(2 ** (bits - 1)) - 1, 2 ** 32 + 5];
/** Wrong as a 64-bit register value. */
const NOT_VALUE64: unknown[] = [undefined, null, 5, Number.NaN, "abc", {}, 2n ** 64n, -(2n ** 63n) - 1n];
/** Wrong as a u64 (IOVA, size). */
const NOT_U64: unknown[] = [undefined, null, Number.NaN, -1, 1.5, -1n, 2n ** 64n, 2n ** 64n + 0x100000n, "abc", {}, sym];
/** Wrong as an options object (undefined is fine: it means none). */
const NOT_OPTIONS: unknown[] = [null, 5, "abc", [], 5n];
/** Wrong as a handler. */
const NOT_FUNCTION: unknown[] = [null, 5, "abc", {}, [], 5n];
/** Wrong as a policy / access / iommu type name. */
const NOT_NAME: unknown[] = [null, 5, "", "Auto", "unsafe", {}, sym];

type Case = { name: string; values: unknown[]; call: (t: Targets, v: never) => unknown };

const CASES: Case[] = [
  ...(["read8", "read16", "read32", "read64"] as const).map((m) => ({ name: `bar.${m}(offset)`, values: NOT_INDEX, call: (t: Targets, v: never) => t.bar[m](v) })),
  ...(["read8", "read16", "read32", "read64"] as const).map((m) => ({ name: `region.${m}(offset)`, values: NOT_INDEX, call: (t: Targets, v: never) => t.region[m](v) })),
  { name: "bar.write32(offset)", values: NOT_INDEX, call: (t, v) => t.bar.write32(v, 0) },
  { name: "bar.write8(value)", values: notValue(8), call: (t, v) => t.bar.write8(0x14, v) },
  { name: "bar.write16(value)", values: notValue(16), call: (t, v) => t.bar.write16(0x14, v) },
  { name: "bar.write32(value)", values: notValue(32), call: (t, v) => t.bar.write32(0x14, v) },
  { name: "bar.write64(value)", values: NOT_VALUE64, call: (t, v) => t.bar.write64(0x28, v) },
  { name: "region.write32(value)", values: notValue(32), call: (t, v) => t.region.write32(0x14, v) },
  { name: "region.write64(value)", values: NOT_VALUE64, call: (t, v) => t.region.write64(0x28, v) },
  { name: "bar.read(offset)", values: NOT_INDEX, call: (t, v) => t.bar.read(v, 4) },
  { name: "bar.read(length)", values: [...NOT_INDEX.filter((x) => x !== undefined)], call: (t, v) => t.bar.read(0, v) },
  { name: "bar.write(bytes)", values: [undefined, null, "abc", [1, 2], {}, 5], call: (t, v) => t.bar.write(0x14, v) },
  { name: "region.map(options)", values: NOT_OPTIONS, call: (t, v) => t.region.map(v) },
  { name: "region.map({ offset })", values: [Number.NaN, -1, 1.5, "abc", 0x123, 2 ** 53], call: (t, v) => t.region.map({ offset: v }) },
  { name: "dev.regionInfo(index)", values: NOT_INDEX, call: (t, v) => t.dev.regionInfo(v) },
  { name: "dev.irqInfo(index)", values: NOT_INDEX, call: (t, v) => t.dev.irqInfo(v) },
  { name: "dev.region(index)", values: NOT_INDEX, call: (t, v) => t.dev.region(v) },
  { name: "dev.bar(index)", values: NOT_INDEX, call: (t, v) => t.dev.bar(v) },
  { name: "dev.mmapPlan(0, { policy })", values: NOT_NAME, call: (t, v) => t.dev.mmapPlan(0, { policy: v }) },
  { name: "dev.msi.enable(count)", values: [...NOT_INDEX, 0, 100_000], call: (t, v) => t.dev.msi.enable(v) },
  { name: "dev.msix.vector(n)", values: NOT_INDEX, call: (t, v) => t.dev.msix.vector(v) },
  { name: "dev.msix.trigger(n)", values: NOT_INDEX, call: (t, v) => t.dev.msix.trigger(v) },
  { name: "dev.req.onRelease(handler)", values: NOT_FUNCTION, call: (t, v) => t.dev.req.onRelease(v) },
  { name: "dev.req.onRelease(_, options)", values: NOT_OPTIONS, call: (t, v) => t.dev.req.onRelease(() => {}, v) },
  { name: "vector.on(handler)", values: [undefined, ...NOT_FUNCTION], call: (t, v) => t.vector.on(v) },
  { name: "group.openPciDevice(bdf)", values: [undefined, null, 5, "", "zz:zz.z", {}, sym], call: (t, v) => t.group.openPciDevice(v) },
  { name: "group.openPciDevice(_, options)", values: NOT_OPTIONS, call: (t, v) => t.group.openPciDevice(t.dev.bdf, v) },
  { name: "group.openPciDevice(_, { policy })", values: NOT_NAME, call: (t, v) => t.group.openPciDevice(t.dev.bdf, { policy: v }) },
  { name: "container.checkExtension(ext)", values: [undefined, null, -1, 1.5, Number.NaN, "type3", {}, 2 ** 33], call: (t, v) => t.container.checkExtension(v) },
  { name: "container.setIommu(type)", values: NOT_NAME, call: (t, v) => t.container.setIommu(v) },
  { name: "container.unmapDma(iova)", values: NOT_U64, call: (t, v) => t.container.unmapDma(v, 4096) },
  { name: "container.unmapDma(_, size)", values: NOT_U64, call: (t, v) => t.container.unmapDma(t.buffer.iova, v) },
  { name: "container.mapDma({ iova })", values: NOT_U64, call: (t, v) => t.container.mapDma({ vaddr: t.buffer.address, iova: v, size: 4096 }) },
  { name: "container.mapDma({ size })", values: NOT_U64, call: (t, v) => t.container.mapDma({ vaddr: t.buffer.address, iova: 0x7000_0000n, size: v }) },
  { name: "container.mapDma(request)", values: [undefined, ...NOT_OPTIONS], call: (t, v) => t.container.mapDma(v) },
  { name: "DmaBuffer.allocate(size)", values: [...NOT_INDEX, 0], call: (t, v) => DmaBuffer.allocate(t.container, v) },
  { name: "DmaBuffer.allocate(_, options)", values: NOT_OPTIONS, call: (t, v) => DmaBuffer.allocate(t.container, 4096, v) },
  { name: "DmaBuffer.allocate(_, { align })", values: [3, -1, 0, 1.5, Number.NaN, "abc", 2n ** 64n], call: (t, v) => DmaBuffer.allocate(t.container, 4096, { align: v }) },
  { name: "DmaBuffer.allocate(_, { limit })", values: [0, -1, Number.NaN, "abc", 2n ** 64n, 4096], call: (t, v) => DmaBuffer.allocate(t.container, 4096, { limit: v }) },
  { name: "DmaBuffer.allocate(_, { access })", values: NOT_NAME, call: (t, v) => DmaBuffer.allocate(t.container, 4096, { access: v }) },
  { name: "DmaBuffer.allocate(_, { hugePages })", values: NOT_NAME, call: (t, v) => DmaBuffer.allocate(t.container, 4096, { hugePages: v }) },
  { name: "buffer.iovaAt(offset)", values: NOT_INDEX, call: (t, v) => t.buffer.iovaAt(v) },
  { name: "buffer.read32(offset)", values: NOT_INDEX, call: (t, v) => t.buffer.read32(v) },
  { name: "buffer.write32(_, value)", values: notValue(32), call: (t, v) => t.buffer.write32(0, v) },
  { name: "buffer.write(_, data)", values: [undefined, null, "abc", [1], {}], call: (t, v) => t.buffer.write(0, v) },
  { name: "allocator.allocate(size)", values: [...NOT_U64, 0, 0n], call: (t, v) => t.allocator.allocate(v) },
  { name: "allocator.allocate(_, request)", values: NOT_OPTIONS, call: (t, v) => t.allocator.allocate(4096, v) },
  { name: "allocator.reserve(iova)", values: NOT_U64, call: (t, v) => t.allocator.reserve(v, 4096) },
  { name: "allocator.free(iova)", values: [undefined, null, 5, "abc", 0x1234n], call: (t, v) => t.allocator.free(v) },
];

/** One finding: a call that did not throw a VfioError with a hint. */
export interface Finding {
  name: string;
  value: string;
  outcome: string;
}

/** Counts of one run of the campaign. */
export interface CampaignResult {
  cases: number;
  vfioErrors: number;
  findings: Finding[];
}

function label(v: unknown): string {
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "symbol") return "Symbol()";
  if (typeof v === "function") return "a function";
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** What the iommufd campaign calls methods on: an Iommufd with a device attached and a buffer mapped. */
export interface IommufdTargets {
  iommu: Iommufd;
  buffer: DmaBuffer;
}

type IommufdCase = { name: string; values: unknown[]; call: (t: IommufdTargets, v: never) => unknown };

/** The same wrong values at the iommufd backend's own slots and at the backend choice. */
const IOMMUFD_CASES: IommufdCase[] = [
  { name: "iommu.unmapDma(iova)", values: NOT_U64, call: (t, v) => t.iommu.unmapDma(v, 4096) },
  { name: "iommu.unmapDma(_, size)", values: NOT_U64, call: (t, v) => t.iommu.unmapDma(t.buffer.iova, v) },
  { name: "iommu.mapDma({ iova })", values: NOT_U64, call: (t, v) => t.iommu.mapDma({ vaddr: t.buffer.address, iova: v, size: 4096 }) },
  { name: "iommu.mapDma({ size })", values: [...NOT_U64, 0], call: (t, v) => t.iommu.mapDma({ vaddr: t.buffer.address, iova: 0x7000_0000n, size: v }) },
  { name: "iommu.mapDma({ vaddr })", values: NOT_U64, call: (t, v) => t.iommu.mapDma({ vaddr: v, iova: 0x7000_0000n, size: 4096 }) },
  { name: "iommu.mapDma(request)", values: [undefined, ...NOT_OPTIONS], call: (t, v) => t.iommu.mapDma(v) },
  { name: "iommu.openPciDevice(bdf)", values: [undefined, null, 5, "", "0000:zz:00.0", "9999:00:00.0", {}, sym], call: (t, v) => t.iommu.openPciDevice(v) },
  { name: "iommu.openPciDevice(_, options)", values: NOT_OPTIONS, call: (t, v) => t.iommu.openPciDevice("0000:00:1f.7", v) },
  { name: "iommu.openPciDevice(_, { vfToken })", values: [null, 5, "", "not-a-uuid", {}, sym], call: (t, v) => t.iommu.openPciDevice("0000:00:1f.7", { vfToken: v }) },
  { name: "DmaBuffer.allocate(iommu, size)", values: [...NOT_INDEX, 0], call: (t, v) => DmaBuffer.allocate(t.iommu, v) },
  { name: "DmaBuffer.allocate(iommu, _, { iova })", values: NOT_U64.filter((x) => x !== undefined), call: (t, v) => DmaBuffer.allocate(t.iommu, 4096, { iova: v }) },
  { name: "openVfio(options)", values: NOT_OPTIONS, call: (_t, v) => openVfio(v) },
  { name: "openVfio({ backend })", values: NOT_NAME, call: (_t, v) => openVfio({ backend: v }) },
  { name: "chooseBackend({ backend })", values: NOT_NAME, call: (_t, v) => chooseBackend({ backend: v }) },
];

/** Runs every case with every value; `fresh` rebuilds targets a case may have consumed. */
export function runCampaign(targets: Targets): CampaignResult {
  return runCases(CASES, targets);
}

/** The iommufd backend's campaign (test/vm/iommufd). */
export function runIommufdCampaign(targets: IommufdTargets): CampaignResult {
  return runCases(IOMMUFD_CASES, targets);
}

function runCases<T>(cases: { name: string; values: unknown[]; call: (t: T, v: never) => unknown }[], targets: T): CampaignResult {
  const result: CampaignResult = { cases: 0, vfioErrors: 0, findings: [] };
  for (const c of cases) {
    for (const value of c.values) {
      result.cases++;
      let outcome: string;
      try {
        const returned = c.call(targets, value as never);
        // Something that returned an object we own must not leak: close it, and count the case as a finding.
        (returned as { close?: () => void } | undefined)?.close?.();
        outcome = "returned normally";
      } catch (err) {
        if (err instanceof VfioError && err.hint.length > 0 && !/0xNaN|0x-|\[object Object\]/.test(err.message)) {
          result.vfioErrors++;
          continue;
        }
        outcome = err instanceof VfioError ? `VfioError with a bad message: ${err.message}` : `${(err as Error)?.name ?? typeof err}: ${(err as Error)?.message ?? String(err)}`;
      }
      result.findings.push({ name: c.name, value: label(value), outcome });
    }
  }
  return result;
}
