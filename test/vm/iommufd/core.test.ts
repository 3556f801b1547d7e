/**
 * The iommufd backend on real vfio-pci (profile `iommufd`: the sandbox's own
 * kernel with CONFIG_IOMMUFD and VFIO_DEVICE_CDEV, intel-iommu with
 * interrupt remapping). Ground truth: sysfs (cdev names, dev numbers,
 * reserved regions, module parameters), the device registers, the kernel's
 * answers and its log. The remap suites run over this backend too
 * (BUN_VFIO_BACKEND=iommufd); this file covers what only iommufd has.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { chooseBackend, Container, DmaBuffer, Iommufd, MappedMemory, openVfio, vfioCdevOf, type PciDevice } from "../../../src/index.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE } from "../../../src/sys/constants.ts";
import { find, findAll, groupOf, IDS, readText, reservedRegions } from "../ground-truth.ts";
import { vfioError } from "../../vfio-error.ts";
import { kernelPageSize } from "../platform.ts";
import { EDU, eduDma } from "../edu-dma-engine.ts";

const P = kernelPageSize();
const nvmeBdf = find(IDS.nvme);
const eduBdf = find(IDS.edu);
const e1000eBdf = find(IDS.e1000e);
const openFds = () => readdirSync("/proc/self/fd").length;

function kernelLog(): string {
  return Bun.spawnSync(["dmesg"]).stdout.toString();
}

describe("the kernel side (sysfs)", () => {
  test("every vfio-pci device has a cdev whose node is the character device sysfs names", () => {
    const bound = [...findAll(IDS.nvme), ...findAll(IDS.edu), ...findAll(IDS.e1000e)];
    expect(bound.length).toBe(3);
    for (const bdf of bound) {
      const names = readdirSync(`/sys/bus/pci/devices/${bdf}/vfio-dev`);
      expect(names.length).toBe(1);
      const node = vfioCdevOf(bdf);
      expect(node).toBe(`/dev/vfio/devices/${names[0]}`);
      const [major, minor] = readText(`/sys/class/vfio-dev/${names[0]}/dev`).split(":").map(Number);
      const st = statSync(node);
      expect(st.isCharacterDevice()).toBe(true);
      expect({ major: Math.floor(st.rdev / 256) & 0xfff, minor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) }).toEqual({ major: major!, minor: minor! });
    }
  });

  test("auto picks iommufd on this kernel (/dev/iommu and cdevs exist); the env and explicit choices win", () => {
    const saved = process.env.BUN_VFIO_BACKEND;
    delete process.env.BUN_VFIO_BACKEND;
    try {
      expect(statSync("/dev/iommu").isCharacterDevice()).toBe(true);
      expect(chooseBackend()).toEqual({ backend: "iommufd", reason: "the kernel has /dev/iommu and VFIO device cdevs" });
      using auto = openVfio();
      expect(auto).toBeInstanceOf(Iommufd);
      expect(chooseBackend({ backend: "type1" }).backend).toBe("type1");
      process.env.BUN_VFIO_BACKEND = "type1";
      expect(chooseBackend()).toEqual({ backend: "type1", reason: "BUN_VFIO_BACKEND=type1" });
      process.env.BUN_VFIO_BACKEND = "bogus";
      expect(vfioError(() => chooseBackend()).code).toBe("EINVAL");
    } finally {
      if (saved === undefined) delete process.env.BUN_VFIO_BACKEND;
      else process.env.BUN_VFIO_BACKEND = saved;
    }
  });

  test("iommufd's own allow_unsafe_interrupts is N, and the verdict says iommufd attested isolation", () => {
    expect(readText("/sys/module/iommufd/parameters/allow_unsafe_interrupts")).toBe("N");
    using iommu = Iommufd.open();
    using nvme = iommu.openPciDevice(nvmeBdf);
    const bar = nvme.bar(0);
    expect(bar.plan.isolation.level).toBe("attested");
    expect(bar.plan.isolation.evidence[0]).toContain("bound to iommufd (VFIO_DEVICE_BIND_IOMMUFD) while iommufd allow_unsafe_interrupts = N");
    expect(bar.plan.explain()).toContain("/sys/module/iommufd/parameters/allow_unsafe_interrupts = N");
  });
});

describe("one IOAS", () => {
  let iommu: Iommufd;
  let nvme: PciDevice;
  beforeAll(() => {
    iommu = Iommufd.open();
  });
  afterAll(() => iommu.close());

  test("a fresh IOAS spans the whole 64-bit space; attaching nvme removes its group's reserved regions", () => {
    expect(iommu.ioasId).toBeGreaterThan(0);
    const before = iommu.iovaRanges();
    expect(before.ranges).toEqual([{ start: 0n, end: (1n << 64n) - 1n }]);
    nvme = iommu.openPciDevice(nvmeBdf);
    const after = iommu.iovaRanges();
    expect(after.alignment).toBe(BigInt(P));
    const reserved = reservedRegions(groupOf(nvmeBdf));
    expect(reserved.some((r) => r.type === "msi")).toBe(true);
    for (const r of reserved) for (const u of after.ranges) expect(u.end < r.start || u.start > r.end).toBe(true);
    // and the allocator follows: nothing it hands out lands in the MSI window
    const msi = reserved.find((r) => r.type === "msi")!;
    const iova = iommu.iovaAllocator.allocate(P, { limit: msi.end + 1n });
    expect(iova + BigInt(P) - 1n < msi.start || iova > msi.end).toBe(true);
    iommu.iovaAllocator.free(iova);
  });

  test("the device works through its cdev: NVMe VS = 1.4.0 by pread and by mmap, config space as sysfs has it", () => {
    expect(nvme.path).toBe(vfioCdevOf(nvmeBdf));
    expect(nvme.region(0).read32(0x08)).toBe(0x10400);
    expect(nvme.bar(0).read32(0x08)).toBe(0x10400);
    const sysCfg = new DataView(readFileSync(`/sys/bus/pci/devices/${nvmeBdf}/config`).buffer);
    expect(nvme.config.read32(0x00)).toBe(sysCfg.getUint32(0, true));
    expect(nvme.info()).toMatchObject({ isPci: true, numRegions: 9, numIrqs: 5 });
  });

  test("IOAS map/unmap semantics: overlap EEXIST, split unmap ENOENT, whole unmap returns the length, unmap-all", () => {
    const mem = MappedMemory.mapAnonymous(4 * P, MAP_ANONYMOUS | MAP_PRIVATE);
    try {
      iommu.mapDma({ vaddr: mem.address, iova: 0x100000n, size: 4 * P });
      expect(vfioError(() => iommu.mapDma({ vaddr: mem.address, iova: 0x100000n + BigInt(2 * P), size: P })).code).toBe("EEXIST");
      const split = vfioError(() => iommu.unmapDma(0x100000n, P));
      expect(split.code).toBe("ENOENT");
      expect(split.hint).toContain("splits a mapping");
      expect(iommu.unmapDma(0x100000n, 4 * P)).toBe(BigInt(4 * P));
      expect(vfioError(() => iommu.unmapDma(0x100000n, 4 * P)).code).toBe("ENOENT");
      iommu.mapDma({ vaddr: mem.address, iova: 0x200000n, size: 2 * P, write: false });
      iommu.mapDma({ vaddr: mem.address, iova: 0x400000n, size: P });
      expect(iommu.unmapAllDma()).toBe(BigInt(3 * P));
      expect(iommu.unmapAllDma()).toBe(0n);
      const unaligned = vfioError(() => iommu.mapDma({ vaddr: mem.address, iova: 0x100800n, size: P }));
      expect(unaligned.code).toBe("EINVAL");
      expect(unaligned.hint).toContain("alignment");
    } finally {
      mem.close();
    }
  });

  test("a cdev is one open instance: a second bind of the same device is refused (EINVAL)", () => {
    const err = vfioError(() => iommu.openPciDevice(nvmeBdf));
    expect(err.op).toBe("VFIO_DEVICE_BIND_IOMMUFD");
    expect(err.code).toBe("EINVAL");
    expect(nvme.closed).toBe(false);
    expect(nvme.region(0).read32(0x08)).toBe(0x10400);
  });

  test("two devices in one IOAS see the same buffer: edu copies out what was put at an IOVA nvme also reaches", () => {
    using edu = iommu.openPciDevice(eduBdf);
    edu.enableMemory();
    edu.enableBusMaster();
    const bar = edu.bar(0);
    using src = DmaBuffer.allocate(iommu, P, { limit: EDU.DMA_LIMIT });
    using dst = DmaBuffer.allocate(iommu, P, { limit: EDU.DMA_LIMIT });
    const data = Uint8Array.from({ length: 256 }, (_, i) => (i * 13 + 1) & 0xff);
    src.write(0, data);
    eduDma(bar, { toRam: false }, src.iova, 0, data.length);
    eduDma(bar, { toRam: true }, dst.iova, 0, data.length);
    expect(dst.read(0, data.length)).toEqual(data);
    expect(iommu.devices.length).toBe(2);
  }, 30_000);
});

describe("errors users hit", () => {
  test("a device in use through its VFIO group cannot be bound through its cdev (EBUSY), and the reverse", () => {
    using container = Container.open();
    const group = container.addGroup(e1000eBdf);
    using iommu = Iommufd.open();
    const busy = vfioError(() => iommu.openPciDevice(e1000eBdf));
    expect(busy.op).toBe("VFIO_DEVICE_BIND_IOMMUFD");
    expect(busy.code).toBe("EBUSY");
    expect(busy.hint).toContain("VFIO group");
    group.close();
    using nic = iommu.openPciDevice(e1000eBdf); // free again once the group is closed
    const reverse = vfioError(() => Container.open().addGroup(e1000eBdf));
    expect(reverse.code).toBe("EBUSY");
    expect(nic.closed).toBe(false);
  });

  test("no /dev/iommu: ENOENT naming CONFIG_IOMMUFD and the type1 way out", () => {
    const err = vfioError(() => Iommufd.open({ path: "/dev/iommu-missing" }));
    expect(err.code).toBe("ENOENT");
    expect(err.hint).toContain("CONFIG_IOMMUFD");
    expect(err.hint).toContain("type1");
  });

  test("a VF token: this kernel's bind has no token field, so EINVAL with the hint; a malformed token never reaches it", () => {
    // 6.12's struct vfio_device_bind_iommufd ends at out_devid and requires flags == 0 (VFIO_DEVICE_BIND_FLAG_TOKEN came in 6.17)
    using iommu = Iommufd.open();
    const err = vfioError(() => iommu.openPciDevice(e1000eBdf, { vfToken: "bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3" }));
    expect(err.op).toBe("VFIO_DEVICE_BIND_IOMMUFD");
    expect(err.code).toBe("EINVAL");
    expect(err.hint).toContain("VFIO_DEVICE_BIND_FLAG_TOKEN");
    expect(vfioError(() => iommu.openPciDevice(e1000eBdf, { vfToken: "not-a-uuid" })).code).toBe("EINVAL");
    using nic = iommu.openPciDevice(e1000eBdf); // the failed binds left nothing behind
    expect(nic.closed).toBe(false);
  });

  test("cdev permission: an unprivileged user gets EACCES on /dev/iommu (mode 0660 root) with the fix", () => {
    const mode = statSync("/dev/iommu").mode & 0o777;
    expect(mode & 0o007).toBe(0); // no access for others
    const child = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e",
      `import { Iommufd } from "${join(import.meta.dirname!, "../../../src/index.ts")}"; try { Iommufd.open(); console.log("opened"); } catch (e) { console.log(JSON.stringify({ code: e.code, hint: e.hint })); }`]);
    const out = JSON.parse(child.stdout.toString().trim());
    expect(out.code).toBe("EACCES");
    expect(out.hint).toContain("/dev/iommu");
  });

  test("closing the IOAS closes its devices first, then its buffers; no fd is left behind", () => {
    const before = openFds();
    const iommu = Iommufd.open();
    const dev = iommu.openPciDevice(eduBdf);
    const buf = DmaBuffer.allocate(iommu, P);
    expect(openFds()).toBe(before + 2);
    iommu.close();
    expect(dev.closed).toBe(true);
    expect(buf.closed).toBe(true);
    expect(openFds()).toBe(before);
    expect(kernelLog()).not.toMatch(/WARNING: .*iommufd/);
  });
});
