import { readdirSync } from "node:fs";
import { VfioError } from "../support/errors.ts";
import { normalizeBdf } from "./bdf.ts";
import { lookupPciNames, type PciIdNames } from "./pci-ids.ts";
import { hostError, hostPath, isErrno, linkTargetName, pciDevicePath, readHexOptional, readOptional, type HostOptions } from "./sysfs.ts";

// IORESOURCE_* bits of the third column of sysfs `resource` (include/linux/ioport.h).
const IORESOURCE_IO = 0x100n;
const IORESOURCE_MEM = 0x200n;
const IORESOURCE_PREFETCH = 0x2000n;
const IORESOURCE_MEM_64 = 0x100000n;

/** One line of a device's sysfs `resource` file: BARs 0-5, then the ROM, then bridge/SR-IOV windows. */
export interface PciResource {
  /** Line number: 0-5 are the BARs, 6 the expansion ROM. */
  readonly index: number;
  /** First host physical address. */
  readonly start: bigint;
  /** Last host physical address (inclusive), as the kernel prints it. */
  readonly end: bigint;
  /** IORESOURCE_* flags. */
  readonly flags: bigint;
  /** Bytes covered: `end - start + 1`, or 0 for an unimplemented BAR. */
  readonly size: bigint;
  /** What the flags say the window is. */
  readonly kind: "mem" | "io" | "unused";
  readonly prefetchable: boolean;
  readonly is64Bit: boolean;
}

/** What sysfs says about one PCI function. */
export interface PciDeviceInfo {
  /** Canonical address, e.g. `"0000:01:00.0"`. */
  readonly bdf: string;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly subsystemVendorId: number | undefined;
  readonly subsystemDeviceId: number | undefined;
  /** 24-bit class code (base class << 16 | subclass << 8 | prog-if). */
  readonly classCode: number;
  readonly revision: number | undefined;
  /** Name of the bound driver (`"nvme"`, `"vfio-pci"`), `undefined` when unbound. */
  readonly driver: string | undefined;
  /** IOMMU group number, `undefined` when the device has none (IOMMU off). */
  readonly iommuGroup: number | undefined;
  /** NUMA node, -1 when the platform does not say, `undefined` when the attribute is absent. */
  readonly numaNode: number | undefined;
  /** The parsed `resource` file. */
  readonly resources: readonly PciResource[];
  /** The `driver_override` value, `undefined` when unset (`"(null)"`). */
  readonly driverOverride: string | undefined;
  /** Names from the system's pci.ids; empty when it is not installed. */
  readonly names: PciIdNames;
}

/** Parses the text of a sysfs `resource` file (three hex columns per line). */
export function parseResourceFile(text: string): PciResource[] {
  const resources: PciResource[] = [];
  for (const line of text.split("\n")) {
    const columns = line.trim().split(/\s+/);
    if (columns.length !== 3) continue;
    const [start, end, flags] = columns.map((c) => BigInt(c)) as [bigint, bigint, bigint];
    const implemented = end !== 0n || start !== 0n;
    const kind = !implemented ? "unused" : flags & IORESOURCE_IO ? "io" : flags & IORESOURCE_MEM ? "mem" : "unused";
    resources.push({
      index: resources.length,
      start,
      end,
      flags,
      size: implemented ? end - start + 1n : 0n,
      kind,
      prefetchable: (flags & IORESOURCE_PREFETCH) !== 0n,
      is64Bit: (flags & IORESOURCE_MEM_64) !== 0n,
    });
  }
  return resources;
}

function readDevice(bdf: string, options?: HostOptions): PciDeviceInfo {
  const dir = pciDevicePath(options, bdf);
  const attr = (name: string) => `${dir}/${name}`;
  const override = readOptional(attr("driver_override"));
  const numa = readOptional(attr("numa_node"));
  const group = linkTargetName(attr("iommu_group"));
  const identity = {
    vendorId: readHexOptional(attr("vendor")) ?? 0xffff,
    deviceId: readHexOptional(attr("device")) ?? 0xffff,
    subsystemVendorId: readHexOptional(attr("subsystem_vendor")),
    subsystemDeviceId: readHexOptional(attr("subsystem_device")),
    classCode: readHexOptional(attr("class")) ?? 0,
  };
  return {
    bdf,
    ...identity,
    revision: readHexOptional(attr("revision")),
    driver: linkTargetName(attr("driver")),
    iommuGroup: group === undefined ? undefined : Number(group),
    numaNode: numa === undefined ? undefined : Number(numa),
    resources: parseResourceFile(readOptional(attr("resource")) ?? ""),
    driverOverride: override === undefined || override === "(null)" || override === "" ? undefined : override,
    names: lookupPciNames(identity, options),
  };
}

/**
 * Lists every PCI function the kernel knows, sorted by address, from
 * `/sys/bus/pci/devices`. Reads sysfs only; needs no privileges (the
 * `config` file is not read). Names come from the system's pci.ids.
 */
export function listPciDevices(options?: HostOptions): PciDeviceInfo[] {
  const dir = hostPath(options, "sys/bus/pci/devices");
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    throw hostError("readdir", dir, err, "Check that sysfs is mounted at /sys (this needs Linux with PCI support).");
  }
  return entries.sort().map((bdf) => readDevice(bdf, options));
}

/**
 * Reads one PCI function from sysfs. Accepts `"0000:01:00.0"` or `"01:00.0"`.
 * Throws a `VfioError` with code `EINVAL` for a malformed address and
 * `ENODEV` when no such device exists.
 */
export function pciDeviceInfo(bdf: string, options?: HostOptions): PciDeviceInfo {
  const address = normalizeBdf(bdf);
  const dir = pciDevicePath(options, address);
  if (!pciDeviceExists(address, options)) throw noSuchDevice("pciDevice", address, dir);
  return readDevice(address, options);
}

/** The error for a PCI address that sysfs does not know. */
export function noSuchDevice(op: string, bdf: string, path: string): VfioError {
  return new VfioError({
    op,
    errno: 19,
    code: "ENODEV",
    path,
    detail: `no PCI device ${bdf}`,
    hint: "Check the address with `bunx bun-vfio list` or `lspci -D` (a hot-unplugged or removed device disappears from sysfs).",
  });
}

/** True when sysfs has a device at this (already normalised) address. */
export function pciDeviceExists(bdf: string, options?: HostOptions): boolean {
  try {
    readdirSync(pciDevicePath(options, bdf));
    return true;
  } catch (err) {
    if (isErrno(err, "ENOENT") || isErrno(err, "ENOTDIR")) return false;
    throw hostError("readdir", pciDevicePath(options, bdf), err, "Check that sysfs is mounted at /sys and readable.");
  }
}
