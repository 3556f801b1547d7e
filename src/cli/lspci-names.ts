/**
 * Device and class names formatted the way `lspci -nn` prints them
 * (pciutils' format_name / format_name_pair with PCI_LOOKUP_MIXED), from the
 * system's pci.ids through the library's lookup.
 */
import { lookupPciNames } from "../host/pci-ids.ts";
import type { HostOptions } from "../host/sysfs.ts";

const h = (n: number, width: number) => n.toString(16).padStart(width, "0");

/** `Non-Volatile memory controller [0108]`; the base class name when the subclass is unknown; `Class [xxxx]` without either. */
export function className(classCode: number, options?: HostOptions): string {
  const names = lookupPciNames({ vendorId: 0xffff, deviceId: 0xffff, classCode }, options);
  const num = h(classCode >>> 8, 4);
  return `${names.subclass ?? names.class ?? "Class"} [${num}]`;
}

/** `Red Hat, Inc. QEMU NVM Express Controller [1b36:0010]`, `Intel Corporation Device [8086:0d57]` or `Device [1234:11e8]`. */
export function vendorDeviceName(vendorId: number, deviceId: number, options?: HostOptions): string {
  const names = lookupPciNames({ vendorId, deviceId }, options);
  const num = `${h(vendorId, 4)}:${h(deviceId, 4)}`;
  if (names.vendor && names.device) return `${names.vendor} ${names.device} [${num}]`;
  if (!names.vendor) return `Device [${num}]`;
  return `${names.vendor} Device [${num}]`;
}

/**
 * The subsystem as `lspci -nn -v` prints it: the subsystem vendor's name,
 * then the per-device subsystem name (or the device's own name when the
 * subsystem ids equal the device ids), then `[sv:sd]`.
 */
export function subsystemName(vendorId: number, deviceId: number, subVendor: number, subDevice: number, options?: HostOptions): string {
  const vendor = lookupPciNames({ vendorId: subVendor, deviceId: 0x10000 }, options).vendor;
  let device = lookupPciNames({ vendorId, deviceId, subsystemVendorId: subVendor, subsystemDeviceId: subDevice }, options).subsystem;
  if (!device && vendorId === subVendor && deviceId === subDevice) device = lookupPciNames({ vendorId, deviceId }, options).device;
  const num = `${h(subVendor, 4)}:${h(subDevice, 4)}`;
  if (vendor && device) return `${vendor} ${device} [${num}]`;
  if (!vendor) return `Device [${num}]`;
  return `${vendor} Device [${num}]`;
}

/** The programming interface as lspci -v shows it after the class: `(prog-if 02 [NVM Express])`, or `""` when it is 0 and unnamed. */
export function progIfText(classCode: number, options?: HostOptions): string {
  const progIf = classCode & 0xff;
  const name = lookupPciNames({ vendorId: 0xffff, deviceId: 0xffff, classCode }, options).progIf;
  if (!progIf && !name) return "";
  return ` (prog-if ${h(progIf, 2)}${name ? ` [${name}]` : ""})`;
}

/** lspci's size suffixes: the largest unit that divides `size` exactly (`[size=16K]`). */
export function lspciSize(size: bigint): string {
  const suffix = ["", "K", "M", "G", "T"];
  let x = size;
  let i = 0;
  while (i < suffix.length - 1 && x % 1024n === 0n && x !== 0n) {
    x /= 1024n;
    i++;
  }
  return `${x}${suffix[i]}`;
}
