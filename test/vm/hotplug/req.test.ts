/**
 * Hot-unplug through QEMU's monitor (profile `hotplug`): the guest test asks
 * the host to `device_del` the nvme behind root port rp1 while the library
 * holds it open. The guest kernel's vfio-pci removal then blocks until every
 * device fd is closed and asks userspace for the device through the REQ
 * channel (vfio_pci_core_request); `req.onRelease(..., { autoRelease: true })`
 * closes the device, the removal completes and QEMU reports DEVICE_DELETED.
 * The same unplug runs over both backends: the type1 container (nvme-hp,
 * slot 1) and iommufd (nvme-hp2, slot 2).
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { Container, DmaBuffer, Iommufd, type PciDevice } from "../../../src/index.ts";
import { findAll, IDS } from "../ground-truth.ts";
import { haveMonitor, qmp, waitForEvent } from "../qmp.ts";
import { vfioError } from "../../vfio-error.ts";

const PCI = "/sys/bus/pci/devices";

/** Binds `bdf` to vfio-pci the way the sandbox's /init does (driver_override, then drivers_probe). */
function bindToVfioPci(bdf: string): void {
  writeFileSync(`${PCI}/${bdf}/driver_override`, "vfio-pci");
  if (existsSync(`${PCI}/${bdf}/driver`)) writeFileSync(`${PCI}/${bdf}/driver/unbind`, bdf);
  writeFileSync("/sys/bus/pci/drivers_probe", bdf);
}

const containers: (Container | Iommufd)[] = [];
afterAll(() => {
  // The unplug already detached the group (or the cdev) in the kernel; closing must still succeed.
  for (const c of containers) c.close();
});

/** One device of QEMU's `query-pci` answer (a bridge lists the devices behind it). */
interface QemuPciDevice {
  bus: number;
  slot: number;
  function: number;
  qdev_id?: string;
  pci_bridge?: { devices?: QemuPciDevice[] };
}

/** The guest PCI address of the QEMU device `id`, from the monitor's `query-pci` (QEMU's own view, not the guest's). */
async function bdfOfQemuId(id: string): Promise<string> {
  const buses = (await qmp("query-pci")) as { devices: QemuPciDevice[] }[];
  const walk = (devices: QemuPciDevice[]): QemuPciDevice | undefined => {
    for (const d of devices) {
      if (d.qdev_id === id) return d;
      const inner = d.pci_bridge?.devices && walk(d.pci_bridge.devices);
      if (inner) return inner;
    }
    return undefined;
  };
  const found = walk(buses.flatMap((b) => b.devices));
  if (!found) throw new Error(`QEMU has no PCI device with id ${id}`);
  const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");
  return `0000:${hex(found.bus, 2)}:${hex(found.slot, 2)}.${found.function}`;
}

/**
 * With MSI-X armed and a pending wait, `device_del`s QEMU device `id` while
 * `dev` (at `bdf`) is open: the kernel's REQ reaches the autoRelease handler,
 * the device closes, the wait ends, the unplug completes and the device and
 * its interrupts are gone from sysfs and /proc/interrupts.
 */
async function unplugWhileHeld(id: string, bdf: string, dev: PciDevice): Promise<void> {
  const vectors = dev.msix.enable(2);
  const pending = vectors[0]!.next().then(() => undefined, (e: unknown) => e as Error);
  const requests: number[] = [];
  dev.req.onRelease(({ count }) => void requests.push(count), { autoRelease: true });

  await qmp("device_del", { id });
  await waitForEvent("DEVICE_DELETED", (d) => d.device === id);

  expect(requests.length).toBeGreaterThanOrEqual(1);
  expect(dev.closed).toBe(true);
  expect((await pending)?.message).toContain("the device was closed");
  expect(existsSync(`${PCI}/${bdf}`)).toBe(false);
  expect(readFileSync("/proc/interrupts", "utf8")).not.toContain(`(${bdf})`);
}

test("device_del: the kernel asks through REQ, autoRelease closes the device, and the unplug completes", async () => {
  expect(haveMonitor()).toBe(true);
  const bdf = await bdfOfQemuId("nvme-hp");
  expect(findAll(IDS.nvme)).toContain(bdf);
  bindToVfioPci(bdf);
  expect(basename(readlinkSync(`${PCI}/${bdf}/driver`))).toBe("vfio-pci");

  const container = Container.open();
  containers.push(container);
  const group = container.addGroup(bdf);
  const dev = group.openPciDevice(bdf);
  const second = group.openPciDevice(bdf); // another open instance: the unplug waits for it too
  const buf = DmaBuffer.allocate(container, 4096);
  dev.enableMemory();
  dev.enableBusMaster();
  await unplugWhileHeld("nvme-hp", bdf, dev);
  expect(second.closed).toBe(true);
  // The kernel detached the group and dropped its mappings: the library notices instead of failing with EINVAL.
  const gone = vfioError(() => group.status()); // the kernel answers ENODEV for a group whose devices are gone
  expect(gone.code).toBe("ENODEV");
  expect(gone.hint).toContain("removed");
  expect(container.groups).toEqual([]);
  expect(buf.closed).toBe(true);
  buf.close();
});

test("device_del over iommufd: REQ, autoRelease, the unplug completes; the IOAS keeps its mappings until the buffer is closed", async () => {
  const bdf = await bdfOfQemuId("nvme-hp2");
  expect(findAll(IDS.nvme)).toContain(bdf);
  bindToVfioPci(bdf);
  expect(basename(readlinkSync(`${PCI}/${bdf}/driver`))).toBe("vfio-pci");
  const iommu = Iommufd.open();
  containers.push(iommu);
  const dev = iommu.openPciDevice(bdf);
  const buf = DmaBuffer.allocate(iommu, 4096);
  dev.enableMemory();
  dev.enableBusMaster();
  await unplugWhileHeld("nvme-hp2", bdf, dev);
  // Unlike type1, an IOAS outlives its devices: the mapping is still there, and the buffer unmaps it itself.
  expect(buf.closed).toBe(false);
  expect(iommu.unmapDma(buf.iova, buf.size)).toBe(BigInt(buf.size));
  iommu.mapDma({ vaddr: buf.address, iova: buf.iova, size: buf.size });
  buf.close();
  expect(vfioError(() => iommu.unmapDma(buf.iova, 4096)).code).toBe("ENOENT"); // the close unmapped it
});
