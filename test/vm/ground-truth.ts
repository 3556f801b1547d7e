/**
 * Ground truth for guest tests, read straight from sysfs with node:fs and
 * never through the library under test.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";

const PCI = "/sys/bus/pci/devices";

/** The profile the guest was booted with (set by the sandbox runner). */
export const profile = process.env.BUN_VFIO_PROFILE ?? "";

/** Known QEMU devices by vendor:device. */
export const IDS = { nvme: "1b36:0010", e1000e: "8086:10d3", edu: "1234:11e8" } as const;

function attr(bdf: string, name: string): string {
  return readFileSync(`${PCI}/${bdf}/${name}`, "utf8").trim();
}

/** Every BDF whose vendor:device is `id`, sorted. */
export function findAll(id: string): string[] {
  const [vendor, device] = id.split(":");
  return readdirSync(PCI)
    .filter((bdf) => attr(bdf, "vendor") === `0x${vendor}` && attr(bdf, "device") === `0x${device}`)
    .sort();
}

/** The one BDF whose vendor:device is `id`; throws when absent. */
export function find(id: string): string {
  const all = findAll(id);
  if (all.length === 0) throw new Error(`no PCI device ${id} in this guest (profile ${profile})`);
  return all[0]!;
}

/** The driver a device is bound to, or undefined. */
export function driverOf(bdf: string): string | undefined {
  const link = `${PCI}/${bdf}/driver`;
  return existsSync(link) ? basename(readlinkSync(link)) : undefined;
}

/** The IOMMU group number from the iommu_group link. */
export function groupOf(bdf: string): number {
  return Number(basename(readlinkSync(`${PCI}/${bdf}/iommu_group`)));
}

/** The sysfs `config` file (what the kernel reads from the device, not virtualised by VFIO). */
export function configBytes(bdf: string): Uint8Array {
  return new Uint8Array(readFileSync(`${PCI}/${bdf}/config`));
}

/** BAR sizes from the sysfs `resource` file (end - start + 1, 0 when unused). */
export function barSizes(bdf: string): number[] {
  return attr(bdf, "resource").split("\n").slice(0, 6).map((line) => {
    const [start, end] = line.trim().split(/\s+/).map((x) => BigInt(x));
    return start === 0n && end === 0n ? 0 : Number(end! - start! + 1n);
  });
}

/** True when the kernel offers any reset method for the device (sysfs `reset` exists). */
export function hasReset(bdf: string): boolean {
  return existsSync(`${PCI}/${bdf}/reset`);
}

/** The group's reserved regions (`start end type`), e.g. the MSI window. */
export function reservedRegions(group: number): { start: bigint; end: bigint; type: string }[] {
  return readFileSync(`/sys/kernel/iommu_groups/${group}/reserved_regions`, "utf8").trim().split("\n").filter(Boolean).map((l) => {
    const [s, e, type] = l.split(/\s+/);
    return { start: BigInt(s!), end: BigInt(e!), type: type! };
  });
}

/** A sysfs/procfs text file, trimmed. */
export function readText(path: string): string {
  return readFileSync(path, "utf8").trim();
}

/**
 * The MSI-X table and PBA location read from the sysfs config bytes with a
 * minimal capability walk written here, independent of the library's parser.
 */
export function msixFromSysfs(bdf: string): { vectors: number; tableBar: number; tableOffset: number; pbaBar: number; pbaOffset: number } | undefined {
  const dv = new DataView(configBytes(bdf).buffer);
  for (let at = dv.getUint8(0x34) & ~3, hops = 0; at !== 0 && hops < 48; at = dv.getUint8(at + 1) & ~3, hops++) {
    if (dv.getUint8(at) !== 0x11) continue;
    const table = dv.getUint32(at + 4, true);
    const pba = dv.getUint32(at + 8, true);
    return { vectors: (dv.getUint16(at + 2, true) & 0x7ff) + 1, tableBar: table & 7, tableOffset: table & ~7, pbaBar: pba & 7, pbaOffset: pba & ~7 };
  }
  return undefined;
}
