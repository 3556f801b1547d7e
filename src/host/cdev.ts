/**
 * VFIO device character devices (`CONFIG_VFIO_DEVICE_CDEV`, Linux 6.6+):
 * a device bound to vfio-pci gets `/sys/bus/pci/devices/<bdf>/vfio-dev/vfioN`
 * and the node `/dev/vfio/devices/vfioN`, which iommufd users open instead
 * of the group.
 */
import { existsSync, readdirSync } from "node:fs";
import { VfioError } from "../support/errors.ts";
import { normalizeBdf } from "./bdf.ts";
import { pciDeviceInfo } from "./pci.ts";
import { hostPath, pciDevicePath, type HostOptions } from "./sysfs.ts";

/**
 * True when VFIO device cdev nodes exist: `/dev/vfio/devices` holds at least
 * one `vfioN`. (sysfs is not enough: in no-IOMMU mode Linux 6.12 registers
 * `/sys/class/vfio-dev/vfioN` but creates no character device.)
 */
export function hasVfioCdevs(options?: HostOptions): boolean {
  try {
    return readdirSync(hostPath(options, "dev/vfio/devices")).some((n) => /^(noiommu-)?vfio\d+$/.test(n));
  } catch {
    return false;
  }
}

/** True when `/dev/iommu` (iommufd) exists. */
export function hasIommufd(options?: HostOptions): boolean {
  return existsSync(hostPath(options, "dev/iommu"));
}

/**
 * The device cdev node of a PCI device bound to a VFIO driver, read from
 * `/sys/bus/pci/devices/<bdf>/vfio-dev/`: `/dev/vfio/devices/vfioN` (or
 * `noiommu-vfioN`, Linux 6.16+ in no-IOMMU mode).
 * @throws VfioError (ENOENT) naming why there is none: not bound to vfio-pci, or a kernel without cdevs
 */
export function vfioCdevOf(bdf: string, options?: HostOptions): string {
  const address = normalizeBdf(bdf);
  const dir = `${pciDevicePath(options, address)}/vfio-dev`;
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => /^(noiommu-)?vfio\d+$/.test(n)).sort();
  } catch {
    // explained below
  }
  const node = names.length > 0 ? hostPath(options, "dev/vfio/devices", names[0]!) : undefined;
  if (node !== undefined && existsSync(node)) return node;
  throw new VfioError({ op: "open device cdev", errno: 2, code: "ENOENT", path: node ?? dir, detail: `${address} has no VFIO device cdev`, hint: noCdevHint(address, options) });
}

function noCdevHint(bdf: string, options?: HostOptions): string {
  let driver: string | undefined;
  try {
    driver = pciDeviceInfo(bdf, options).driver;
  } catch {
    return `No PCI device ${bdf}: check the address (bunx bun-vfio list).`;
  }
  if (driver !== "vfio-pci" && !driver?.endsWith("-vfio-pci")) return `${bdf} is bound to ${driver ?? "no driver"}, not vfio-pci: run \`bunx bun-vfio bind ${bdf}\` (as root).`;
  if (!existsSync(hostPath(options, "sys/class/vfio-dev"))) return "This kernel has no VFIO device cdevs (CONFIG_VFIO_DEVICE_CDEV, Linux 6.6+): use the type1 backend (backend: \"type1\").";
  return `vfio-pci holds ${bdf} but there is no cdev node for it: in no-IOMMU mode kernels before 6.16 create none (use backend: "noiommu"); otherwise devtmpfs or udev has not made /dev/vfio/devices/vfioN yet.`;
}
