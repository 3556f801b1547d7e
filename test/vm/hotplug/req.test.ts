/**
 * Hot-unplug through QEMU's monitor (profile `hotplug`): the guest test asks
 * the host to `device_del` the nvme behind root port rp1 while the library
 * holds it open. The guest kernel's vfio-pci removal then blocks until every
 * device fd is closed and asks userspace for the device through the REQ
 * channel (vfio_pci_core_request); `req.onRelease(..., { autoRelease: true })`
 * closes the device, the removal completes and QEMU reports DEVICE_DELETED.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { Container, DmaBuffer } from "../../../src/index.ts";
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

const containers: Container[] = [];
afterAll(() => {
  // The unplug already detached the group in the kernel; closing must still succeed.
  for (const c of containers) c.close();
});

test("device_del: the kernel asks through REQ, autoRelease closes the device, and the unplug completes", async () => {
  expect(haveMonitor()).toBe(true);
  const [bdf] = findAll(IDS.nvme);
  expect(bdf).toBeDefined();
  bindToVfioPci(bdf!);
  expect(basename(readlinkSync(`${PCI}/${bdf}/driver`))).toBe("vfio-pci");

  const container = Container.open();
  containers.push(container);
  const group = container.addGroup(bdf!);
  const dev = group.openPciDevice(bdf!);
  const second = group.openPciDevice(bdf!); // another open instance: the unplug waits for it too
  const buf = DmaBuffer.allocate(container, 4096);
  dev.enableMemory();
  dev.enableBusMaster();
  const vectors = dev.msix.enable(2);
  const pending = vectors[0]!.next().then(() => undefined, (e: unknown) => e as Error);
  const requests: number[] = [];
  dev.req.onRelease(({ count }) => void requests.push(count), { autoRelease: true });

  await qmp("device_del", { id: "nvme-hp" });
  await waitForEvent("DEVICE_DELETED", (d) => d.device === "nvme-hp");

  expect(requests.length).toBeGreaterThanOrEqual(1);
  expect(dev.closed).toBe(true);
  expect((await pending)?.message).toContain("the device was closed");
  expect(second.closed).toBe(true);
  expect(existsSync(`${PCI}/${bdf}`)).toBe(false);
  expect(readFileSync("/proc/interrupts", "utf8")).not.toContain(`(${bdf})`);
  // The kernel detached the group and dropped its mappings: the library notices instead of failing with EINVAL.
  const gone = vfioError(() => group.status()); // the kernel answers ENODEV for a group whose devices are gone
  expect(gone.code).toBe("ENODEV");
  expect(gone.hint).toContain("removed");
  expect(container.groups).toEqual([]);
  expect(buf.closed).toBe(true);
  buf.close();
});
