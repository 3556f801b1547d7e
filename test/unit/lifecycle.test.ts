/**
 * Lifecycles on the fake kernel (test/harness/fake-kernel.ts): teardown
 * order and exception safety, stale handles, the GC backstop, the decode
 * gate and the MSI-X guards, with no VFIO on the host. The guest suites
 * prove the same against real vfio-pci.
 */
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Container, DmaBuffer, mb, PciCommand, rmb, useSys, VfioError, wmb, type Sys } from "../../src/index.ts";
import * as V from "../../src/uapi/vfio.ts";
import { FakeKernel, FakeSigbus } from "../harness/fake-kernel.ts";
import { vfioError } from "../vfio-error.ts";
import { runCampaign } from "../harness/bad-inputs.ts";

const root = mkdtempSync(join(tmpdir(), "bun-vfio-lifecycle-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
mkdirSync(join(root, "dev/vfio"), { recursive: true });
for (const id of [7, 8]) {
  writeFileSync(join(root, `dev/vfio/${id}`), "");
  mkdirSync(join(root, `sys/kernel/iommu_groups/${id}/devices`), { recursive: true });
}
const allowUnsafe = join(root, "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts");
mkdirSync(join(root, "sys/module/vfio_iommu_type1/parameters"), { recursive: true });
const BDF = "0000:01:00.0";

let fake: FakeKernel;
let previous: Sys;
beforeEach(() => {
  fake = new FakeKernel(root, [7, 8]);
  previous = useSys(fake);
  writeFileSync(allowUnsafe, "N\n"); // type1 attached with N: the kernel attested isolation
});
afterEach(() => {
  useSys(previous);
});

function openAll() {
  const container = Container.open({ path: join(root, "dev/vfio/vfio") });
  const group = container.addGroup(7, { root });
  const dev = group.openPciDevice(BDF);
  return { container, group, dev };
}

describe("teardown order", () => {
  test("container.close: devices (their mappings first), then groups, then DMA memory, then the container", () => {
    const { container, dev } = openAll();
    dev.enableMemory();
    dev.bar(0).read32(0);
    const buf = DmaBuffer.allocate(container, 4096);
    expect(fake.dma.size).toBe(1);
    fake.log.length = 0;
    container.close();
    const at = (prefix: string) => fake.log.findIndex((l) => l.startsWith(prefix));
    expect(at("munmap bar")).toBeGreaterThanOrEqual(0);
    expect(at("munmap bar")).toBeLessThan(at("close device"));
    expect(at("close device")).toBeLessThan(at("close group"));
    expect(at("close group")).toBeLessThan(at("munmap anonymous"));
    expect(at("munmap anonymous")).toBeLessThan(at("close container"));
    expect(buf.closed).toBe(true);
    expect(fake.openFds()).toBe(0);
    expect(fake.mappings).toBe(0);
  });

  test("a failing step does not stop the rest: every fd and mapping is released, the first error is rethrown", () => {
    const { container, group, dev } = openAll();
    dev.enableMemory();
    dev.bar(0);
    fake.failNext.set("close", 5); // the device fd's close reports EIO
    const err = vfioError(() => container.close());
    expect(err.op).toBe("close");
    expect(err.code).toBe("EIO");
    expect(err.hint.length).toBeGreaterThan(0);
    expect(fake.openFds()).toBe(0);
    expect(fake.mappings).toBe(0);
    expect(dev.closed && group.closed && container.closed).toBe(true);
  });

  test("Container.open leaks no fd when VFIO_GET_API_VERSION fails", () => {
    fake.failNext.set(`ioctl ${V.VFIO_GET_API_VERSION}`, 25);
    const err = vfioError(() => Container.open({ path: join(root, "dev/vfio/vfio") }));
    expect(err.op).toBe("VFIO_GET_API_VERSION");
    expect(fake.openFds()).toBe(0);
  });

  test("10,000 bar() calls with close leave no mapping and no growing bookkeeping", () => {
    const { container, dev } = openAll();
    dev.enableMemory();
    for (let i = 0; i < 10_000; i++) dev.bar(0).close();
    expect(fake.mappings).toBe(0);
    container.close();
  });
});

describe("stale handles", () => {
  test("the last group leaving drops every mapping: old buffers say closed (ECLOSED naming why), new ones work", () => {
    const { container, group } = openAll();
    const old = DmaBuffer.allocate(container, 4096);
    group.close();
    expect(fake.dma.size).toBe(0); // the kernel dropped it
    expect(old.closed).toBe(true);
    const err = vfioError(() => old.iovaAt(0));
    expect(err.code).toBe("ECLOSED");
    expect(err.message).toContain("dropped");
    const again = container.addGroup(7, { root });
    const fresh = DmaBuffer.allocate(container, 4096);
    expect(fake.dma.size).toBe(1);
    old.close(); // a no-op, no EINVAL
    fresh.close();
    again.close();
    container.close();
  });

  test("the allocator and segments are closed with the container", () => {
    const { container } = openAll();
    const allocator = container.iovaAllocator;
    const buf = DmaBuffer.allocate(container, 8192);
    container.close();
    expect(vfioError(() => allocator.allocate(4096)).code).toBe("ECLOSED");
    expect(vfioError(() => buf.segments(4096)).code).toBe("ECLOSED");
  });
});

describe("the decode gate: no SIGBUS", () => {
  test("a mapped BAR access while memory decoding is off is a VfioError (EIO), never a fault", () => {
    const { container, dev } = openAll();
    dev.enableMemory();
    const bar = dev.bar(0);
    const raw = dev.region(0).map({ offset: 0, length: 0x1000 });
    bar.write32(0x14, 0x460001);
    expect(bar.read32(0x14)).toBe(0x460001);
    dev.updateCommand(0, PciCommand.MEMORY);
    for (const access of [() => bar.read32(0x14), () => bar.write32(0x14, 1), () => raw.read32(0), () => raw.write32(0, 1), () => bar.read(0, 16)]) {
      let thrown: unknown;
      try {
        access();
      } catch (err) {
        thrown = err;
      }
      expect(thrown).not.toBeInstanceOf(FakeSigbus);
      expect(thrown).toBeInstanceOf(VfioError);
      expect((thrown as VfioError).code).toBe("EIO");
    }
    dev.enableMemory();
    expect(bar.read32(0x14)).toBe(0x460001);
    container.close();
  });
});

describe("the MSI-X table on every path", () => {
  test("without isolation: raw map of the table page refused unless opted in; pwrite over the table refused", () => {
    writeFileSync(allowUnsafe, "Y\n");
    const { container, dev } = openAll();
    dev.enableMemory();
    const region = dev.region(0);
    const err = vfioError(() => region.map({ offset: 0x2000, length: 0x1000 }));
    expect(err.code).toBe("EPERM");
    expect(err.hint).toContain("unsafeMapMsixTable");
    expect(vfioError(() => region.map()).code).toBe("EPERM");
    expect(region.map({ offset: 0, length: 0x1000 }).read32(0)).toBe(0); // registers only: fine
    region.map({ offset: 0x2000, length: 0x1000, unsafeMapMsixTable: true }).close();
    expect(vfioError(() => region.write32(0x2008, 0xef)).code).toBe("EPERM");
    const strict = dev.bar(0, { policy: "strict", allowMsixWrites: true });
    expect(strict.plan.ranges.find((r) => r.start === 0x2000)?.access).toBe("trap");
    expect(vfioError(() => strict.write32(0x2008, 0xef)).message).toContain("drops writes");
    container.close();
  });

  test("with attested isolation the whole BAR maps and the guard still refuses table writes without the opt-out", () => {
    const { container, dev } = openAll();
    dev.enableMemory();
    const bar = dev.bar(0);
    expect(bar.plan.isolation.level).toBe("attested");
    expect(bar.plan.ranges).toEqual([expect.objectContaining({ start: 0, end: 0x4000, access: "mmap" })]);
    expect(vfioError(() => bar.write32(0x2008, 0xef)).code).toBe("EPERM");
    dev.bar(0, { allowMsixWrites: true }).write32(0x2008, 0xef);
    container.close();
  });
});

describe("64-bit values are never truncated", () => {
  test("IOVAs and sizes past 2^64 are refused, not wrapped onto live mappings", () => {
    const { container } = openAll();
    const buf = DmaBuffer.allocate(container, 4096, { iova: 0x100000n });
    for (const bad of [2n ** 64n + 0x100000n, -1n, 1.5, Number.NaN, "0x100000"]) {
      expect(vfioError(() => container.unmapDma(bad as bigint, 4096)).code).toBe("EINVAL");
      expect(vfioError(() => container.mapDma({ vaddr: 0x1000n, iova: bad as bigint, size: 4096 })).code).toBe("EINVAL");
    }
    expect(fake.dma.get(0x100000n)).toBe(4096n); // still mapped
    expect(buf.closed).toBe(false);
    container.close();
  });
});

/** Overwrites stack slots that may still hold stale pointers (JSC scans the stack conservatively). */
function clobberStack(depth: number): number {
  const filler = [depth, depth + 1, depth + 2, depth + 3];
  return depth > 0 ? clobberStack(depth - 1) + filler.length : 0;
}

async function collect(until: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !until(); i++) {
    clobberStack(200);
    Bun.gc(true);
    await Bun.sleep(5);
  }
}

describe("the GC backstop", () => {
  test("a device dropped while its group lives: its BAR mapping and fd are released, the device opens again", async () => {
    const container = Container.open({ path: join(root, "dev/vfio/vfio") });
    const group = container.addGroup(7, { root });
    (() => {
      const dev = group.openPciDevice(BDF);
      dev.enableMemory();
      dev.bar(0).read32(0);
    })();
    expect(fake.mappings).toBe(1);
    await collect(() => fake.mappings === 0 && fake.openFds("device") === 0);
    expect(fake.mappings).toBe(0);
    expect(fake.openFds("device")).toBe(0);
    group.openPciDevice(BDF).close();
    container.close();
  });

  test("a DMA buffer dropped while its container lives: unmapped from the IOMMU, then munmapped", async () => {
    const container = Container.open({ path: join(root, "dev/vfio/vfio") });
    container.addGroup(7, { root });
    (() => void DmaBuffer.allocate(container, 1 << 20))();
    expect(fake.dma.size).toBe(1);
    await collect(() => fake.dma.size === 0 && fake.mappings === 0);
    expect(fake.dma.size).toBe(0);
    expect(fake.mappings).toBe(0);
    expect(fake.log.indexOf("munmap anonymous")).toBeGreaterThan(fake.log.findIndex((l) => l.startsWith("unmap-dma")));
    container.close();
  });

  test("a dropped tree (container, group, device, BAR, DMA buffer) releases mappings, DMA and fds once collected", async () => {
    (() => {
      const container = Container.open({ path: join(root, "dev/vfio/vfio") });
      const group = container.addGroup(7, { root });
      const dev = group.openPciDevice(BDF);
      dev.enableMemory();
      dev.bar(0).read32(0);
      DmaBuffer.allocate(container, 4096);
    })();
    expect(fake.mappings).toBe(2);
    expect(fake.dma.size).toBe(1);
    expect(fake.openFds()).toBe(3);
    await collect(() => fake.mappings === 0 && fake.openFds() === 0 && fake.dma.size === 0);
    expect(fake.mappings).toBe(0);
    expect(fake.openFds()).toBe(0);
    expect(fake.dma.size).toBe(0);
    // the IOMMU unmap (or the kernel's drop with the last group) comes before the buffer's munmap
    const unmapped = fake.log.findIndex((l) => l.startsWith("unmap-dma") || l.startsWith("kernel-drop"));
    expect(unmapped).toBeGreaterThanOrEqual(0);
    expect(unmapped).toBeLessThan(fake.log.indexOf("munmap anonymous"));
  });
});

describe("bad input, generated (method x wrong value), on the fake kernel", () => {
  test("every call throws a VfioError with a hint: nothing else, nothing returns", () => {
    const { container, group, dev } = openAll();
    dev.enableMemory();
    const buffer = DmaBuffer.allocate(container, 4096);
    const vectors = dev.msix.enable(1);
    const result = runCampaign({ container, group, dev, bar: dev.bar(0), region: dev.region(0), buffer, allocator: container.iovaAllocator, vector: vectors[0]! });
    expect(result.findings).toEqual([]);
    expect(result.cases).toBeGreaterThan(400);
    expect(result.vfioErrors).toBe(result.cases);
    container.close();
  });
});

describe("hints point the right way", () => {
  test("an unknown iommuType names the types, not a module to load", () => {
    const container = Container.open({ path: join(root, "dev/vfio/vfio") });
    const err = vfioError(() => container.addGroup(7, { root, iommuType: "type3" as never }));
    expect(err.code).toBe("EINVAL");
    expect(err.hint).toContain('"type1v2"');
    expect(err.hint).not.toContain("modprobe");
    expect(fake.openFds("group")).toBe(0);
    container.close();
  });

  test("a group already attached to another container: EBUSY saying so, not 'another IOMMU type'", () => {
    const a = Container.open({ path: join(root, "dev/vfio/vfio") });
    const b = Container.open({ path: join(root, "dev/vfio/vfio") });
    const group = a.addGroup(7, { root });
    const err = vfioError(() => b.addGroup(group));
    expect(err.code).toBe("EBUSY");
    expect(err.message).toContain("already attached");
    expect(group.attached).toBe(true); // still a's
    a.close();
    b.close();
  });

  test("after close, every method says ECLOSED (not 'call enable()')", () => {
    const { container, dev } = openAll();
    const msix = dev.msix;
    container.close();
    for (const call of [() => msix.trigger(0), () => msix.enable(1), () => dev.bar(0), () => dev.regionInfo(0), () => container.iovaAllocator]) {
      expect(vfioError(call).code).toBe("ECLOSED");
    }
  });
});

describe("device-memory ordering goes through the ordered accessors", () => {
  test("BAR and raw device mappings: readl/writel paths are ordered, *Relaxed are not; DMA reads are ordered, DMA writes plain; barriers reach the seam", () => {
    const { container, dev } = openAll();
    dev.enableMemory();
    const bar = dev.bar(0);
    const before = fake.orderedAccesses;
    bar.write32(0x14, 1);
    bar.read32(0x14);
    bar.write64(0x28, 5n);
    expect(fake.orderedAccesses - before).toBe(3);
    bar.write32Relaxed(0x14, 2);
    bar.write32Relaxed(0x14, 2);
    expect(fake.orderedAccesses - before).toBe(3);
    const buf = DmaBuffer.allocate(container, 4096);
    buf.write32(0, 7); // plain: ordering comes from the doorbell's barrier
    expect(fake.orderedAccesses - before).toBe(3);
    expect(buf.read32(0)).toBe(7);
    expect(fake.orderedAccesses - before).toBe(4);
    wmb();
    rmb();
    mb();
    expect(fake.barriers).toEqual(["wmb", "rmb", "mb"]);
    container.close();
  });
});
