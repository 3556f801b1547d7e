/**
 * The core API on real vfio-pci (profile `remap`: q35 + intel-iommu with
 * interrupt remapping; QEMU nvme, e1000e and edu bound to vfio-pci).
 * Expected values come from sysfs and from the devices' documented registers.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Container, MappedMemory, type Group, type PciDevice } from "../../../src/index.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE } from "../../../src/sys/constants.ts";
import { barSizes, configBytes, find, groupOf, hasReset, IDS, reservedRegions } from "../ground-truth.ts";
import { vfioError } from "../../vfio-error.ts";
import { kernelPageSize } from "../platform.ts";

/** The kernel's page size (4 KiB on x86 and arm64, 16 KiB on arm64-16k): mappings are multiples of it. */
const P = kernelPageSize();

const nvmeBdf = find(IDS.nvme);
const eduBdf = find(IDS.edu);

describe("container", () => {
  test("opens, reports API version 0 and the type1 IOMMU models", () => {
    using container = Container.open();
    expect(container.checkExtension("type1v2")).toBe(true);
    expect(container.checkExtension("type1")).toBe(true);
    // Debian's 6.12 has no CONFIG_VFIO_NOIOMMU
    expect(container.supportedIommuTypes()).toEqual(["type1v2", "type1"]);
    expect(container.iommuType).toBeUndefined();
  });

  test("iommuInfo and DMA need an attached group first", () => {
    using container = Container.open();
    const err = vfioError(() => container.iommuInfo());
    expect(err.code).toBe("EINVAL");
    expect(err.hint).toContain("addGroup");
  });
});

describe("group + device (nvme)", () => {
  let container: Container;
  let group: Group;
  let dev: PciDevice;
  beforeAll(() => {
    container = Container.open();
    group = container.addGroup(nvmeBdf);
    dev = group.openPciDevice(nvmeBdf);
  });
  afterAll(() => container.close());

  test("group number and status match sysfs", () => {
    expect(group.id).toBe(groupOf(nvmeBdf));
    expect(group.path).toBe(`/dev/vfio/${groupOf(nvmeBdf)}`);
    expect(group.status()).toEqual({ flags: 3, viable: true, containerSet: true });
    expect(container.iommuType).toBe("type1v2");
  });

  test("IOMMU info: the kernel's page size is an IOMMU page size, usable ranges exclude the group's reserved MSI window", () => {
    const info = container.iommuInfo();
    expect(info.pageSizes & BigInt(P)).toBe(BigInt(P));
    expect(info.pageSizes & BigInt(P - 1)).toBe(0n); // nothing smaller than a CPU page
    expect(info.iovaRanges!.length).toBeGreaterThan(0);
    for (const r of reservedRegions(group.id)) {
      for (const u of info.iovaRanges!) expect(u.end < r.start || u.start > r.end).toBe(true);
    }
    expect(info.dmaAvailable).toBeGreaterThan(0);
  });

  test("map and unmap DMA; dmaAvailable counts the mapping; a split unmap is refused", () => {
    const mem = MappedMemory.mapAnonymous(4 * P, MAP_ANONYMOUS | MAP_PRIVATE);
    try {
      const before = container.iommuInfo().dmaAvailable!;
      container.mapDma({ vaddr: mem.address, iova: 0x100000n, size: 4 * P });
      expect(container.iommuInfo().dmaAvailable).toBe(before - 1);
      const split = vfioError(() => container.unmapDma(0x100000n, P));
      expect(split.code).toBe("EINVAL");
      const overlap = vfioError(() => container.mapDma({ vaddr: mem.address, iova: 0x100000n + BigInt(2 * P), size: P }));
      expect(overlap.code).toBe("EEXIST");
      expect(container.unmapDma(0x100000n, 4 * P)).toBe(BigInt(4 * P));
      expect(container.iommuInfo().dmaAvailable).toBe(before);
      container.mapDma({ vaddr: mem.address, iova: 0x200000n, size: 2 * P, write: false });
      expect(container.unmapAllDma()).toBe(BigInt(2 * P));
    } finally {
      mem.close();
    }
  });

  test("device info: vfio-pci flags, 9 regions, 5 IRQ indexes; RESET iff sysfs offers a reset", () => {
    const info = dev.info();
    expect(info.isPci).toBe(true);
    expect(info.numRegions).toBe(9);
    expect(info.numIrqs).toBe(5);
    expect(info.canReset).toBe(hasReset(nvmeBdf));
  });

  test("region sizes equal the sysfs resource sizes for every BAR", () => {
    const sizes = barSizes(nvmeBdf);
    for (let bar = 0; bar < 6; bar++) expect({ bar, size: dev.regionInfo(bar).size }).toEqual({ bar, size: sizes[bar]! });
    const bar0 = dev.regionInfo(0);
    expect(bar0).toMatchObject({ readable: true, writable: true, mmappable: true, msixMappable: true });
    expect(dev.regionInfo(7).size).toBe(configBytes(nvmeBdf).length >= 4096 ? 4096 : 256);
  });

  test("config space reads match the sysfs config bytes", () => {
    const sys = new DataView(configBytes(nvmeBdf).buffer);
    expect(dev.config.read16(0x00)).toBe(sys.getUint16(0x00, true));
    expect(dev.config.read16(0x02)).toBe(sys.getUint16(0x02, true));
    expect(dev.config.read32(0x08)).toBe(sys.getUint32(0x08, true)); // revision + class code
    expect(dev.config.read32(0x2c)).toBe(sys.getUint32(0x2c, true)); // subsystem ids
    expect(dev.config.read8(0x34)).toBe(sys.getUint8(0x34)); // capabilities pointer
    expect(dev.config.read16(0x00)).toBe(0x1b36);
    expect(dev.config.read32(0x08) >>> 8).toBe(0x010802); // mass storage / NVM / NVMe
  });

  test("NVMe registers through pread: VS = 1.4.0, CAP.MQES and CAP.CSS plausible per spec", () => {
    const bar0 = dev.region(0);
    expect(bar0.read32(0x08)).toBe(0x10400);
    const cap = bar0.read64(0x00);
    expect(Number(cap & 0xffffn)).toBeGreaterThan(0); // MQES: max queue entries - 1
    expect(Number((cap >> 37n) & 1n)).toBe(1); // CSS bit 0: NVM command set
    expect(bar0.read32(0x00)).toBe(Number(cap & 0xffffffffn));
    const bulk = new DataView(bar0.read(0, 16).buffer);
    expect(bulk.getUint32(8, true)).toBe(0x10400);
  });

  test("a mapped BAR reads the same registers as pread", () => {
    const bar0 = dev.region(0);
    const map = bar0.map();
    expect(map.read32(0x08)).toBe(0x10400);
    expect(map.read64(0x00)).toBe(bar0.read64(0x00));
    // CC (0x14) with EN=0 is freely writable: IOSQES=6, IOCQES=4
    map.write32(0x14, 0x00460000);
    expect(bar0.read32(0x14)).toBe(0x00460000);
    bar0.write32(0x14, 0);
    expect(map.read32(0x14)).toBe(0);
    map.close();
    expect(vfioError(() => map.read32(0x08)).code).toBe("ECLOSED");
  });

  test("reset clears the controller configuration register", () => {
    const bar0 = dev.region(0);
    bar0.write32(0x14, 0x00460000);
    dev.reset();
    expect(bar0.read32(0x14)).toBe(0);
    expect(bar0.read32(0x08)).toBe(0x10400);
  });

  test("bad region accesses are VfioErrors, not crashes", () => {
    const bar0 = dev.region(0);
    expect(vfioError(() => bar0.read32(0x4000)).code).toBe("EINVAL");
    expect(vfioError(() => bar0.read32(0x02)).code).toBe("EINVAL");
    expect(vfioError(() => bar0.read(0x3ff0, 0x20)).code).toBe("EINVAL");
    expect(vfioError(() => dev.regionInfo(9)).code).toBe("EINVAL");
    expect(vfioError(() => dev.irqInfo(5)).code).toBe("EINVAL");
    expect(vfioError(() => dev.region(2).read32(0)).code).toBe("EINVAL"); // BAR2 is unused: size 0
  });

  test("a second open of the same group fails with EBUSY and a hint", () => {
    using second = Container.open();
    const err = vfioError(() => second.addGroup(nvmeBdf));
    expect(err.code).toBe("EBUSY");
    expect(err.hint).toContain("already open");
  });
});

describe("edu device", () => {
  test("identification and liveness registers (QEMU docs/specs/edu.rst)", () => {
    using container = Container.open();
    using group = container.addGroup(eduBdf);
    using dev = group.openPciDevice(eduBdf);
    const bar0 = dev.region(0);
    expect(bar0.size).toBe(barSizes(eduBdf)[0]!);
    expect(bar0.size).toBe(1 << 20);
    expect(bar0.read32(0x00)).toBe(0x010000ed); // 0xRRrr00edu: major 1, minor 0
    bar0.write32(0x04, 0x12345678);
    expect(bar0.read32(0x04)).toBe(~0x12345678 >>> 0); // liveness check returns the inverse
    const map = bar0.map({ offset: 0, length: P });
    map.write32(0x04, 0xa5a5a5a5);
    expect(map.read32(0x04)).toBe(0x5a5a5a5a);
  });

  test("reset throws when the kernel offers none, instead of doing nothing", () => {
    using container = Container.open();
    using group = container.addGroup(eduBdf);
    using dev = group.openPciDevice(eduBdf);
    expect(dev.info().canReset).toBe(hasReset(eduBdf));
    if (!dev.info().canReset) expect(vfioError(() => dev.reset()).code).toBe("EOPNOTSUPP");
    else dev.reset();
  });
});

describe("lifetimes and errors", () => {
  test("closing the container closes groups and devices; use after close throws", () => {
    const container = Container.open();
    const group = container.addGroup(eduBdf);
    const dev = group.openPciDevice(eduBdf);
    const bar0 = dev.region(0);
    const map = bar0.map({ length: P });
    container.close();
    expect(dev.closed && group.closed && container.closed).toBe(true);
    expect(vfioError(() => bar0.read32(0)).code).toBe("ECLOSED");
    expect(vfioError(() => map.read32(0)).code).toBe("ECLOSED");
    expect(vfioError(() => dev.info()).code).toBe("ECLOSED");
    expect(vfioError(() => group.status()).code).toBe("ECLOSED");
    expect(vfioError(() => container.checkExtension("type1")).code).toBe("ECLOSED");
    container.close(); // idempotent
    // the group is free again
    using again = Container.open();
    again.addGroup(eduBdf).close();
  });

  test("bad and unknown addresses, wrong device for the group", () => {
    using container = Container.open();
    expect(vfioError(() => container.addGroup("not-a-bdf")).code).toBe("EINVAL");
    expect(vfioError(() => container.addGroup("0000:7f:1f.7")).code).toBe("ENODEV");
    using group = container.addGroup(eduBdf);
    expect(vfioError(() => group.openPciDevice(nvmeBdf)).code).toBe("ENODEV");
  });

  test("a device not bound to vfio-pci gets a hint naming its driver", () => {
    // Every PCI device in this guest that is not on vfio-pci and has a group: the 9p transport at least.
    const others = [...new Bun.Glob("*").scanSync({ cwd: "/sys/bus/pci/devices", onlyFiles: false })]
      .filter((bdf) => !Bun.spawnSync(["test", "-e", `/sys/bus/pci/devices/${bdf}/iommu_group`]).exitCode)
      .filter((bdf) => {
        const drv = Bun.spawnSync(["readlink", `/sys/bus/pci/devices/${bdf}/driver`]).stdout.toString().trim();
        return drv !== "" && !drv.endsWith("/vfio-pci");
      });
    expect(others.length).toBeGreaterThan(0);
    using container = Container.open();
    const err = vfioError(() => container.addGroup(others[0]!));
    expect(["ENOENT", "ENOTVIABLE"]).toContain(err.code);
    expect(err.hint).toMatch(/bind/);
  });
});
