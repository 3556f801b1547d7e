/**
 * Profile `shared-group`: group viability on real vfio-pci. The edu (on
 * vfio-pci) shares its IOMMU group with a virtio-rng bound to virtio-pci,
 * so the group is not viable until the virtio-rng is unbound.
 * Expected values from sysfs.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { bindToVfio, Container, Iommufd, releaseFromVfio } from "../../../src/index.ts";
import { driverOf, find, groupOf, IDS } from "../ground-truth.ts";
import { vfioError } from "../../vfio-error.ts";

const eduBdf = find(IDS.edu);
const rngBdf = find("1af4:1005");

describe("a group shared with a device on another driver", () => {
  test("is refused as not viable, naming the other device and its driver", () => {
    expect(driverOf(rngBdf)).toBe("virtio-pci");
    using container = Container.open();
    const err = vfioError(() => container.addGroup(eduBdf));
    expect(err.code).toBe("ENOTVIABLE");
    expect(err.message).toContain(`${rngBdf} (driver virtio-pci)`);
    expect(err.hint).toContain(rngBdf);
    expect(container.groups).toEqual([]);
  });

  test("becomes viable once the other device is unbound; hot reset info lists the bus", () => {
    writeFileSync("/sys/bus/pci/drivers/virtio-pci/unbind", rngBdf);
    expect(driverOf(rngBdf)).toBeUndefined();
    using container = Container.open();
    using group = container.addGroup(eduBdf);
    expect(group.id).toBe(groupOf(eduBdf));
    expect(group.status().viable).toBe(true);
    using dev = group.openPciDevice(eduBdf);
    // Ground truth: the devices on the bridge's secondary bus are the ones a bus reset hits.
    const bridgeDir = readlinkSync(`/sys/bus/pci/devices/${eduBdf}`).replace(/\/[^/]+$/, "");
    const onBus = readdirSync(`/sys/bus/pci/devices`).filter((b) => readlinkSync(`/sys/bus/pci/devices/${b}`).replace(/\/[^/]+$/, "") === bridgeDir).sort();
    const affected = dev.hotResetInfo();
    expect(affected.map((d) => d.bdf).sort()).toEqual(onBus);
    for (const d of affected) expect(d.groupId).toBe(group.id);
    // The kernel resets a bus only when every device on it is a VFIO device.
    expect(vfioError(() => dev.hotReset([group])).code).toBe("EINVAL");
  });

  test("bind moves the other device to vfio-pci; then a bus reset works; release gives it back", () => {
    const bound = bindToVfio(rngBdf);
    expect(bound.previousDriver).toBeUndefined(); // unbound by the previous test
    expect(driverOf(rngBdf)).toBe("vfio-pci");
    using container = Container.open();
    using group = container.addGroup(eduBdf);
    using dev = group.openPciDevice(eduBdf);
    const bar0 = dev.region(0);
    dev.hotReset([group]);
    expect(bar0.read32(0x00)).toBe(0x010000ed);
    dev.close();
    group.close();
    // The same reset over iommufd: no group fds (a non-empty list is EINVAL for a cdev-opened device); the kernel
    // checks that this iommufd owns every device the reset hits, so both are opened through it.
    {
      using iommu = Iommufd.open();
      using edu = iommu.openPciDevice(eduBdf);
      using rng = iommu.openPciDevice(rngBdf);
      expect(edu.hotResetInfo().map((d) => d.bdf).sort()).toEqual([eduBdf, rngBdf].sort());
      using other = Container.open();
      expect(vfioError(() => edu.hotReset([{ unsafeFd: other.unsafeFd }])).code).toBe("EINVAL");
      edu.hotReset([]);
      expect(edu.region(0).read32(0x00)).toBe(0x010000ed);
      expect(rng.closed).toBe(false);
    }
    const released = releaseFromVfio(rngBdf, { previousDriver: "virtio-pci" });
    expect(released.driver).toBe("virtio-pci");
    expect(driverOf(rngBdf)).toBe("virtio-pci");
  });
});
