/**
 * The library's promises on real vfio-pci (profile `remap`): no SIGBUS while
 * memory decoding is off, 64-bit values never truncated, stale handles
 * refused after the kernel dropped their state, MSI-X masking only where
 * the plan maps the table, (the leak suites are in leaks.test.ts). Expected
 * values come from the kernel: sysfs config, /proc/self/maps, VmLck, fds
 * and the edu DMA engine's view of memory.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Container, DmaBuffer, PciCommand, VfioError, type PciDevice, type VfioSpace } from "../../../src/index.ts";
import { openTestSpace } from "../backend.ts";
import { configBytes, find, IDS, msixFromSysfs } from "../ground-truth.ts";
import { EDU, eduDma } from "../edu-dma-engine.ts";
import { kernelPageSize } from "../platform.ts";
import { vfioError } from "../../vfio-error.ts";

const nvmeBdf = find(IDS.nvme);
const eduBdf = find(IDS.edu);
const e1000eBdf = find(IDS.e1000e);
const PAGE = kernelPageSize();

/** VFIO device mappings in this process (`/proc/self/maps` lines backed by a vfio-device fd). */
function vfioMaps(): number {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => l.includes("vfio-device")).length;
}
function commandFromSysfs(bdf: string): number {
  const c = configBytes(bdf);
  return c[4]! | (c[5]! << 8);
}

describe("no SIGBUS: mapped BAR accesses while memory decoding is off", () => {
  test("bar, raw mapping and bulk copies give EIO errors, the process lives, and decoding back on restores access", () => {
    using container = openTestSpace();
    using dev = container.openPciDevice(nvmeBdf);
    dev.enableMemory();
    const bar = dev.bar(0);
    const raw = dev.region(0).map({ offset: 0, length: PAGE });
    expect(bar.read32(0x08)).toBe(0x10400);
    dev.updateCommand(0, PciCommand.MEMORY);
    expect(commandFromSysfs(nvmeBdf) & PciCommand.MEMORY).toBe(0); // the device really stopped decoding
    const attempts = [() => bar.read32(0x08), () => bar.write32(0x14, 0), () => bar.read64(0), () => raw.read32(0x08), () => raw.write32(0x14, 0), () => bar.read(0, 64), () => bar.write(0x14, new Uint8Array(4))];
    for (const attempt of attempts) {
      const err = vfioError(attempt);
      expect(err.code).toBe("EIO");
      expect(err.hint).toContain("enableMemory");
    }
    dev.enableMemory();
    expect(commandFromSysfs(nvmeBdf) & PciCommand.MEMORY).toBe(PciCommand.MEMORY);
    expect(bar.read32(0x08)).toBe(0x10400);
    expect(raw.read32(0x08)).toBe(0x10400);
  });

  test("a reset revokes and restores the mappings: accesses after it work, none faults", () => {
    using container = openTestSpace();
    using dev = container.openPciDevice(nvmeBdf);
    dev.enableMemory();
    const bar = dev.bar(0);
    dev.reset();
    // After the reset the gate reads the command register again (the kernel restores config space).
    const memoryOn = (commandFromSysfs(nvmeBdf) & PciCommand.MEMORY) !== 0;
    if (memoryOn) expect(bar.read32(0x08)).toBe(0x10400);
    else expect(vfioError(() => bar.read32(0x08)).code).toBe("EIO");
  });
});

describe("64-bit values are never truncated", () => {
  let container: VfioSpace;
  let edu: PciDevice;
  beforeAll(() => {
    container = openTestSpace();
    edu = container.openPciDevice(eduBdf);
    edu.enableMemory();
    edu.enableBusMaster();
  });
  afterAll(() => container.close());

  test("unmapDma / mapDma past 2^64 are refused; the live mapping at the wrapped address still serves DMA", () => {
    using buf = DmaBuffer.allocate(container, PAGE, { iova: 0x100000n });
    const pattern = Uint8Array.from({ length: 256 }, (_, i) => (i * 7 + 3) & 0xff);
    buf.write(0, pattern);
    expect(vfioError(() => container.unmapDma(2n ** 64n + 0x100000n, 4096)).code).toBe("EINVAL");
    expect(vfioError(() => container.mapDma({ vaddr: buf.address, iova: 2n ** 64n + 0x200000n, size: 4096 })).code).toBe("EINVAL");
    const bar = edu.bar(0);
    eduDma(bar, { toRam: false }, buf.iova, 0, pattern.length); // the device reads our buffer
    using back = DmaBuffer.allocate(container, 4096, { limit: EDU.DMA_LIMIT });
    eduDma(bar, { toRam: true }, back.iova, 0, pattern.length);
    expect(back.read(0, pattern.length)).toEqual(pattern);
    expect(buf.closed).toBe(false);
  });

  test("RegionInfo.offset is exact (a bigint the kernel's index << 40 layout)", () => {
    expect(edu.regionInfo(0).offset).toBe(0n);
    expect(edu.regionInfo(7).offset).toBe(7n << 40n);
  });
});

describe("stale state after the kernel dropped it", () => {
  test("closing the container's last group drops every mapping: old buffers say closed, new ones serve DMA", () => {
    using container = Container.open();
    const group = container.addGroup(eduBdf);
    const old = DmaBuffer.allocate(container, 4096, { limit: EDU.DMA_LIMIT });
    group.close();
    expect(old.closed).toBe(true);
    expect(vfioError(() => old.iovaAt(0)).code).toBe("ECLOSED");
    const again = container.addGroup(eduBdf);
    const edu = again.openPciDevice(eduBdf);
    edu.enableMemory();
    edu.enableBusMaster();
    using src = DmaBuffer.allocate(container, 4096, { limit: EDU.DMA_LIMIT });
    using dst = DmaBuffer.allocate(container, 4096, { limit: EDU.DMA_LIMIT });
    src.write(0, new Uint8Array([1, 2, 3, 4]));
    const bar = edu.bar(0);
    eduDma(bar, { toRam: false }, src.iova, 0, 4);
    eduDma(bar, { toRam: true }, dst.iova, 0, 4);
    expect(dst.read(0, 4)).toEqual(new Uint8Array([1, 2, 3, 4]));
    old.close(); // no EINVAL
  });

  test("vectors from before disable()+enable() are stale: they neither trigger nor disable the new ones", async () => {
    using container = openTestSpace();
    using dev = container.openPciDevice(nvmeBdf);
    dev.enableMemory();
    dev.enableBusMaster();
    const old = dev.msix.enable(2);
    dev.msix.disable();
    const fresh = dev.msix.enable(2);
    expect(vfioError(() => old[0]!.trigger()).code).toBe("ECLOSED");
    old[Symbol.dispose](); // must not disable the new vectors
    expect(dev.msix.enabled).toBe(true);
    const wake = fresh[0]!.next();
    fresh[0]!.trigger();
    expect(await wake).toBe(1);
    expect(vfioError(() => dev.msix.vector(5)).code).toBe("EINVAL");
  });

  test("after close, interrupt calls say the device is closed", () => {
    const container = openTestSpace();
    const dev = container.openPciDevice(nvmeBdf);
    container.close();
    const err = vfioError(() => dev.msix.trigger(0));
    expect(err.code).toBe("ECLOSED");
    expect(err.hint).not.toContain("enable()");
  });
});

describe("MSI-X masking follows the plan", () => {
  test('under policy "strict" the table is never mapped for masking: mask() is EOPNOTSUPP naming the plan', () => {
    using container = openTestSpace();
    using dev = container.openPciDevice(e1000eBdf, { policy: "strict" });
    dev.enableMemory();
    dev.enableBusMaster();
    const msix = msixFromSysfs(e1000eBdf)!;
    const before = vfioMaps();
    using vectors = dev.msix.enable(1);
    const err = vfioError(() => vectors[0]!.mask());
    expect(err.code).toBe("EOPNOTSUPP");
    expect(err.message).toContain("strict");
    expect(vfioMaps()).toBe(before); // nothing of BAR msix.tableBar got mapped
    expect(msix.tableBar).toBe(3);
  });
});

void VfioError;
