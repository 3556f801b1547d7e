/**
 * arm64: a device no driver has probed has no iommu_group link yet (the
 * SMMU attaches it to a group when a driver's probe configures its DMA).
 * The profile adds QEMU's pci-testdev (1b36:0005), which no guest driver
 * claims and /init leaves alone. Ground truth: the sysfs links themselves.
 */
import { expect, test } from "bun:test";
import { existsSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import { bindToVfio, Container, iommuGroupOf, releaseFromVfio } from "../../../src/index.ts";
import { driverOf, find } from "../ground-truth.ts";
import { vfioError } from "../../vfio-error.ts";

const PCI_TESTDEV = "1b36:0005";
const bdf = find(PCI_TESTDEV);
const dir = `/sys/bus/pci/devices/${bdf}`;

test("an unprobed device: no driver, no iommu_group link; iommuGroupOf says to bind first", () => {
  expect(driverOf(bdf)).toBeUndefined();
  expect(existsSync(`${dir}/iommu_group`)).toBe(false);
  const err = vfioError(() => iommuGroupOf(bdf));
  expect(err.code).toBe("ENOENT");
  expect(err.hint).toContain("bind it first");
  expect(err.hint).not.toContain("intel_iommu");
});

test("bindToVfio needs no group; after it the group exists, iommuGroupOf and the container use it; release gives the device back", () => {
  const r = bindToVfio(bdf);
  try {
    expect(r.previousDriver).toBeUndefined();
    expect(driverOf(bdf)).toBe("vfio-pci");
    const group = Number(basename(readlinkSync(`${dir}/iommu_group`)));
    expect(iommuGroupOf(bdf)).toBe(group);
    expect(existsSync(`/dev/vfio/${group}`)).toBe(true);
    using c = Container.open();
    const g = c.addGroup(bdf);
    expect(g.id).toBe(group);
    const dev = g.openPciDevice(bdf);
    expect(dev.info().isPci).toBe(true);
  } finally {
    releaseFromVfio(bdf, { previousDriver: r.previousDriver });
  }
  expect(driverOf(bdf)).toBeUndefined();
});
