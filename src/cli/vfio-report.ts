/**
 * The VFIO half of `bun-vfio info`: what the kernel reports through the
 * device fd (VFIO_DEVICE_GET_INFO, GET_REGION_INFO, GET_IRQ_INFO) and each
 * BAR's mmap plan. An index the device does not implement (VGA on a
 * non-VGA device, ERR on conventional PCI: EINVAL or ENODEV) is reported as
 * absent, never as a failure.
 */
import { VfioError } from "../support/errors.ts";
import { openVfio } from "../iommu/backend.ts";
import { iommuGroupOf, isNoiommuGroup } from "../host/groups.ts";
import type { PciDevice } from "../device/pci-device.ts";
import type { MmapPolicy } from "../mmap-plan/index.ts";
import * as V from "../uapi/vfio.ts";
import { hex as hexString } from "../support/format.ts";

const REGION_NAMES = ["BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "config", "VGA"];
const IRQ_NAMES = ["INTx", "MSI", "MSI-X", "ERR", "REQ"];
const CAP_NAMES: Record<number, string> = { 1: "SPARSE_MMAP", 2: "TYPE", 3: "MSIX_MAPPABLE", 4: "NVLINK2_SSATGT", 5: "NVLINK2_LNKSPD" };

/**
 * Opens `bdf` in a fresh backend (openVfio's choice; no-IOMMU mode for a
 * device the admin put in a no-IOMMU group) and runs `fn` with the device;
 * everything is closed afterwards.
 */
export function withDevice<T>(bdf: string, fn: (dev: PciDevice) => T): T {
  using space = openVfio(isNoiommuGroup(iommuGroupOf(bdf)) ? { backend: "noiommu" } : {});
  using dev = space.openPciDevice(bdf);
  return fn(dev);
}

/** The errno names with which vfio-pci says "this index does not exist on this device". */
function isAbsent(err: unknown): boolean {
  return err instanceof VfioError && (err.code === "EINVAL" || err.code === "ENODEV");
}

function flagNames(flags: number, names: [number, string][]): string[] {
  return names.filter(([bit]) => flags & bit).map(([, n]) => n);
}

/** What VFIO says about one device, JSON-ready. */
export interface VfioReport {
  flags: string[];
  numRegions: number;
  numIrqs: number;
  regions: { index: number; name: string; size: string; offset: string; flags: string[]; caps: string[]; sparseAreas: { offset: string; size: string }[] }[];
  irqs: { index: number; name: string; present: boolean; count: number; flags: string[]; absentBecause: string | null }[];
  plans: { bar: number; explain: string }[];
}

/** BARs with a non-zero region size. */
export function presentBars(dev: PciDevice): number[] {
  return [0, 1, 2, 3, 4, 5].filter((i) => dev.regionInfo(i).size > 0);
}

/** Reads the VFIO view of an open device. */
export function vfioReport(dev: PciDevice, policy: MmapPolicy | undefined): VfioReport {
  const info = dev.info();
  const regions: VfioReport["regions"] = [];
  for (let i = 0; i < info.numRegions; i++) {
    let r;
    try {
      r = dev.regionInfo(i);
    } catch (err) {
      if (isAbsent(err)) continue;
      throw err;
    }
    if (r.size === 0) continue;
    regions.push({
      index: i,
      name: REGION_NAMES[i] ?? `region${i}`,
      size: hexString(r.size),
      offset: hexString(r.offset),
      flags: flagNames(r.flags, [[V.VFIO_REGION_INFO_FLAG_READ, "READ"], [V.VFIO_REGION_INFO_FLAG_WRITE, "WRITE"], [V.VFIO_REGION_INFO_FLAG_MMAP, "MMAP"]]),
      caps: r.capIds.map((id) => CAP_NAMES[id] ?? `cap${id}`),
      sparseAreas: (r.sparseAreas ?? []).map((a) => ({ offset: hexString(a.offset), size: hexString(a.size) })),
    });
  }
  const irqs: VfioReport["irqs"] = [];
  for (let i = 0; i < info.numIrqs; i++) {
    try {
      const q = dev.irqInfo(i);
      const flags = flagNames(q.flags, [[V.VFIO_IRQ_INFO_EVENTFD, "EVENTFD"], [V.VFIO_IRQ_INFO_MASKABLE, "MASKABLE"], [V.VFIO_IRQ_INFO_AUTOMASKED, "AUTOMASKED"], [V.VFIO_IRQ_INFO_NORESIZE, "NORESIZE"]]);
      irqs.push({ index: i, name: IRQ_NAMES[i] ?? `irq${i}`, present: q.count > 0, count: q.count, flags, absentBecause: null });
    } catch (err) {
      if (!isAbsent(err)) throw err;
      const why = i === 3 ? `${(err as VfioError).code}: vfio-pci offers the ERR index only on PCIe devices` : `${(err as VfioError).code}`;
      irqs.push({ index: i, name: IRQ_NAMES[i] ?? `irq${i}`, present: false, count: 0, flags: [], absentBecause: why });
    }
  }
  const plans = presentBars(dev).map((bar) => ({ bar, explain: dev.mmapPlan(bar, { policy }).explain() }));
  const flags = flagNames(info.flags, [[V.VFIO_DEVICE_FLAGS_RESET, "RESET"], [V.VFIO_DEVICE_FLAGS_PCI, "PCI"], [V.VFIO_DEVICE_FLAGS_CAPS, "CAPS"]]);
  return { flags, numRegions: info.numRegions, numIrqs: info.numIrqs, regions, irqs, plans };
}

/** The text form, indented like the sysfs part. */
export function vfioLines(v: VfioReport): string[] {
  const lines = [`\tVFIO: device flags ${v.flags.join("|") || "-"}, ${v.numRegions} regions, ${v.numIrqs} IRQ indexes`];
  for (const r of v.regions) {
    const sparse = r.sparseAreas.length ? ` areas ${r.sparseAreas.map((a) => `${a.offset}+${a.size}`).join(" ")}` : "";
    lines.push(`\t\tregion ${String(r.index).padStart(2)} ${r.name.padEnd(7)} size ${r.size.padEnd(10)} ${(r.flags.join("|") || "-").padEnd(16)} ${r.caps.join(",")}${sparse}`.trimEnd());
  }
  for (const q of v.irqs) {
    const rest = q.absentBecause ? `absent (${q.absentBecause})` : `count ${String(q.count).padEnd(4)} ${q.flags.join("|") || "-"}`;
    lines.push(`\t\tirq ${q.index} ${q.name.padEnd(6)} ${rest}`);
  }
  for (const p of v.plans) lines.push("", ...p.explain.split("\n").map((l) => `\t${l}`));
  return lines;
}
