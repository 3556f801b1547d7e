/**
 * Profile `shared-group`: an edu on vfio-pci and a virtio-rng on virtio-pci
 * behind one PCIe-to-PCI bridge share an IOMMU group (from sysfs).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";

const inGuest = process.env.BUN_VFIO_SANDBOX === "1" && process.env.BUN_VFIO_PROFILE === "shared-group";
const PCI = "/sys/bus/pci/devices";

function find(vendor: string, device: string): string {
  const read = (b: string, f: string): string => readFileSync(`${PCI}/${b}/${f}`, "utf8").trim();
  const bdf = readdirSync(PCI).find((b) => read(b, "vendor") === `0x${vendor}` && read(b, "device") === `0x${device}`);
  if (!bdf) throw new Error(`no PCI device ${vendor}:${device}`);
  return bdf;
}

const link = (bdf: string, name: string): string => basename(readlinkSync(`${PCI}/${bdf}/${name}`));

describe.skipIf(!inGuest)("shared IOMMU group", () => {
  test("edu and virtio-rng are in the same iommu_group, with the bridge", () => {
    const edu = find("1234", "11e8");
    const rng = find("1af4", "1005");
    const group = link(edu, "iommu_group");
    expect(link(rng, "iommu_group")).toBe(group);
    const members = readdirSync(`/sys/kernel/iommu_groups/${group}/devices`);
    expect(members).toContain(edu);
    expect(members).toContain(rng);
    expect(existsSync(`/dev/vfio/${group}`)).toBe(true);
  });

  test("edu is on vfio-pci while virtio-rng stays on virtio-pci (group not viable)", () => {
    expect(link(find("1234", "11e8"), "driver")).toBe("vfio-pci");
    expect(link(find("1af4", "1005"), "driver")).toBe("virtio-pci");
  });
});
