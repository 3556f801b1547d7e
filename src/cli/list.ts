/**
 * `bun-vfio list`: PCI devices with ids, names from the system's pci.ids,
 * driver and IOMMU group.
 */
import { listPciDevices } from "../host/pci.ts";
import { parse } from "./args.ts";

/** Prints one line per PCI device (`--json` for machine-readable output). */
export function listCommand(argv: string[]): number {
  const { values } = parse("list", argv, { json: { type: "boolean" } });
  if (values.help) {
    console.log("usage: bun-vfio list [--json]\n\nPCI devices: address, vendor:device, class, driver, IOMMU group, names from pci.ids.");
    return 0;
  }
  const devices = listPciDevices();
  if (values.json) {
    console.log(JSON.stringify(devices, (_k, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v), 2));
    return 0;
  }
  const hex4 = (n: number) => n.toString(16).padStart(4, "0");
  for (const d of devices) {
    const name = [d.names.vendor, d.names.device].filter(Boolean).join(" ") || d.names.subclass || d.names.class || "";
    const group = d.iommuGroup === undefined ? "-" : String(d.iommuGroup);
    console.log(`${d.bdf}  ${hex4(d.vendorId)}:${hex4(d.deviceId)}  class ${d.classCode.toString(16).padStart(6, "0")}  group ${group.padEnd(3)}  ${(d.driver ?? "(none)").padEnd(10)}  ${name}`);
  }
  return 0;
}
