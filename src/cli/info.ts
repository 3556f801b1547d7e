/**
 * `bun-vfio info` and `bun-vfio plan`: open a device through VFIO and show
 * what the kernel reports, and the mmap plan of each BAR.
 */
import { VfioError } from "../support/errors.ts";
import { Container } from "../iommu/container.ts";
import type { RegionInfo } from "../uapi/structs.ts";
import type { PciDevice } from "../device/pci-device.ts";
import { pciDeviceInfo } from "../host/pci.ts";
import * as V from "../uapi/vfio.ts";
import type { MmapPolicy } from "../mmap-plan/index.ts";
import { hex } from "../support/format.ts";
import { parse, policyOf, requireBdf } from "./args.ts";

const REGION_NAMES = ["BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "config", "VGA"];
const IRQ_NAMES = ["INTx", "MSI", "MSI-X", "ERR", "REQ"];
const CAP_NAMES: Record<number, string> = { 1: "SPARSE_MMAP", 2: "TYPE", 3: "MSIX_MAPPABLE", 4: "NVLINK2_SSATGT", 5: "NVLINK2_LNKSPD" };

/** Opens `bdf` in a fresh container and runs `fn` with the device; everything is closed afterwards. */
function withDevice<T>(bdf: string, fn: (dev: PciDevice) => T): T {
  using container = Container.open();
  using group = container.addGroup(bdf);
  using dev = group.openPciDevice(bdf);
  return fn(dev);
}

/** Region info, or undefined for an index the device does not implement (EINVAL: VGA on a non-VGA device). */
function regionInfoIfPresent(dev: PciDevice, index: number): RegionInfo | undefined {
  try {
    return dev.regionInfo(index);
  } catch (err) {
    if (err instanceof VfioError && err.code === "EINVAL") return undefined;
    throw err;
  }
}

function flagNames(flags: number, names: [number, string][]): string {
  return names.filter(([bit]) => flags & bit).map(([, n]) => n).join("|") || "-";
}

/** BARs with a non-zero size. */
function presentBars(dev: PciDevice): number[] {
  return [0, 1, 2, 3, 4, 5].filter((i) => dev.regionInfo(i).size > 0);
}

function printPlans(dev: PciDevice, bars: number[], policy: MmapPolicy | undefined): void {
  for (const bar of bars) {
    console.log(dev.mmapPlan(bar, { policy }).explain());
    console.log("");
  }
}

/** Prints device info, regions, IRQ indexes, capabilities and each BAR's mmap plan. */
export function infoCommand(argv: string[]): number {
  const { values, positionals } = parse("info", argv, { policy: { type: "string" } });
  if (values.help) {
    console.log("usage: bun-vfio info <bdf> [--policy auto|strict|force]\n\nOpens the device through VFIO (it must be bound to vfio-pci) and prints what the kernel reports.");
    return 0;
  }
  const bdf = requireBdf("info", positionals);
  const policy = policyOf("info", values.policy);
  const sys = pciDeviceInfo(bdf);
  const title = [sys.names.vendor, sys.names.device].filter(Boolean).join(" ");
  console.log(`${sys.bdf} ${hex(sys.vendorId, 4)}:${hex(sys.deviceId, 4)} ${title}`.trimEnd());
  console.log(`driver ${sys.driver ?? "(none)"}, IOMMU group ${sys.iommuGroup ?? "-"}`);
  withDevice(bdf, (dev) => {
    const info = dev.info();
    console.log(`device flags ${flagNames(info.flags, [[V.VFIO_DEVICE_FLAGS_RESET, "RESET"], [V.VFIO_DEVICE_FLAGS_PCI, "PCI"], [V.VFIO_DEVICE_FLAGS_CAPS, "CAPS"]])}, ${info.numRegions} regions, ${info.numIrqs} IRQ indexes`);
    console.log("\nregions:");
    for (let i = 0; i < info.numRegions; i++) {
      const r = regionInfoIfPresent(dev, i);
      if (!r || r.size === 0) continue;
      const flags = flagNames(r.flags, [[V.VFIO_REGION_INFO_FLAG_READ, "READ"], [V.VFIO_REGION_INFO_FLAG_WRITE, "WRITE"], [V.VFIO_REGION_INFO_FLAG_MMAP, "MMAP"]]);
      const caps = r.capIds.map((id) => CAP_NAMES[id] ?? `cap${id}`).join(",");
      const sparse = r.sparseAreas ? ` areas ${r.sparseAreas.map((a) => `${hex(a.offset)}+${hex(a.size)}`).join(" ")}` : "";
      console.log(`  ${String(i).padStart(2)} ${(REGION_NAMES[i] ?? "dev").padEnd(7)} size ${hex(r.size).padEnd(10)} ${flags.padEnd(16)} ${caps}${sparse}`);
    }
    console.log("\nIRQ indexes:");
    for (let i = 0; i < info.numIrqs; i++) {
      const q = dev.irqInfo(i);
      const flags = flagNames(q.flags, [[V.VFIO_IRQ_INFO_EVENTFD, "EVENTFD"], [V.VFIO_IRQ_INFO_MASKABLE, "MASKABLE"], [V.VFIO_IRQ_INFO_AUTOMASKED, "AUTOMASKED"], [V.VFIO_IRQ_INFO_NORESIZE, "NORESIZE"]]);
      console.log(`  ${i} ${(IRQ_NAMES[i] ?? "?").padEnd(6)} count ${String(q.count).padEnd(4)} ${flags}`);
    }
    console.log("\ncapabilities:");
    for (const cap of dev.capabilities()) console.log(`  ${hex(cap.offset, 3)} ${cap.name}`);
    console.log("");
    printPlans(dev, presentBars(dev), policy);
  });
  return 0;
}

/** Prints `explain()` of the mmap plan of one BAR or of every present BAR. */
export function planCommand(argv: string[]): number {
  const { values, positionals } = parse("plan", argv, { bar: { type: "string" }, policy: { type: "string" } });
  if (values.help) {
    console.log("usage: bun-vfio plan <bdf> [--bar N] [--policy auto|strict|force]\n\nExplains which pages of each BAR would be mmapped and which trapped through pread/pwrite, and why.");
    return 0;
  }
  const bdf = requireBdf("plan", positionals);
  const policy = policyOf("plan", values.policy);
  withDevice(bdf, (dev) => printPlans(dev, values.bar === undefined ? presentBars(dev) : [Number(values.bar)], policy));
  return 0;
}
