/**
 * The iommufd backend's host-side pieces without a kernel: struct codecs
 * (layouts from include/uapi/linux/iommufd.h and vfio.h; the iommufd guest
 * profile proves them on a real kernel), the backend choice and the cdev
 * lookup on fake sysfs trees, and iommufd's isolation evidence.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chooseBackend, detectIsolation, vfioCdevOf } from "../../src/index.ts";
import * as F from "../../src/uapi/iommufd.ts";
import { vfioError } from "../vfio-error.ts";

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const BDF = "0000:00:04.0";
let root: string;

function put(path: string, content = ""): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content);
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "bun-vfio-iommufd-"));
  const dev = `sys/bus/pci/devices/${BDF}`;
  for (const [f, v] of [["vendor", "0x1b36"], ["device", "0x0010"], ["class", "0x010802"]] as const) put(`${dev}/${f}`, `${v}\n`);
  mkdirSync(join(root, "sys/bus/pci/drivers/vfio-pci"), { recursive: true });
  symlinkSync(join(root, "sys/bus/pci/drivers/vfio-pci"), join(root, dev, "driver"));
  mkdirSync(join(root, dev, "vfio-dev/vfio3"), { recursive: true });
  mkdirSync(join(root, "sys/class/vfio-dev"), { recursive: true });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("struct codecs", () => {
  test("ioctl numbers: _IO(';', 0x80 + n) for iommufd, VFIO_BASE + 18..20 for the cdev", () => {
    expect(F.IOMMU_IOAS_ALLOC).toBe(0x3b81);
    expect(F.IOMMU_IOAS_MAP).toBe(0x3b85);
    expect(F.IOMMU_IOAS_UNMAP).toBe(0x3b86);
    expect(F.VFIO_DEVICE_BIND_IOMMUFD).toBe(0x3b76);
    expect(F.VFIO_DEVICE_ATTACH_IOMMUFD_PT).toBe(0x3b77);
  });

  test("iommu_ioas_map: size, flags, ioas_id, user_va, length, iova at the header's offsets", () => {
    const b = F.encodeIoasMap(5, F.IOMMU_IOAS_MAP_FIXED_IOVA | F.IOMMU_IOAS_MAP_READABLE, 0x7f00_0000_1000n, 0x2000n, 0xffff_ffff_ffff_f000n);
    expect(b.length).toBe(40);
    expect([dv(b).getUint32(0, true), dv(b).getUint32(4, true), dv(b).getUint32(8, true), dv(b).getUint32(12, true)]).toEqual([40, 5, 5, 0]);
    expect([dv(b).getBigUint64(16, true), dv(b).getBigUint64(24, true), dv(b).getBigUint64(32, true)]).toEqual([0x7f00_0000_1000n, 0x2000n, 0xffff_ffff_ffff_f000n]);
  });

  test("unmap, ranges, bind (with and without a VF token), attach", () => {
    const u = F.encodeIoasUnmap(2, 0x1000n, (1n << 64n) - 1n);
    expect([u.length, dv(u).getUint32(4, true), dv(u).getBigUint64(8, true), F.decodeIoasUnmapLength(u)]).toEqual([24, 2, 0x1000n, (1n << 64n) - 1n]);
    const r = F.encodeIovaRanges(2, 3, 0xabc000n);
    expect([r.length, dv(r).getUint32(8, true), dv(r).getBigUint64(16, true)]).toEqual([32, 3, 0xabc000n]);
    const plain = F.encodeBindIommufd(9);
    expect([plain.length, dv(plain).getUint32(4, true), dv(plain).getInt32(8, true)]).toEqual([16, 0, 9]);
    const token = F.encodeBindIommufd(9, 0x5000n);
    expect([token.length, dv(token).getUint32(4, true), dv(token).getBigUint64(16, true)]).toEqual([24, F.VFIO_DEVICE_BIND_FLAG_TOKEN, 0x5000n]);
    expect([...F.encodeAttachPt(7)].slice(0, 12)).toEqual([12, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0]);
  });

  test("a UUID becomes the 16 bytes of uuid_t in text order; anything else is refused", () => {
    expect([...F.uuidBytes("bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3")!].slice(0, 4)).toEqual([0xbd, 0x8d, 0x9d, 0x2b]);
    expect(F.uuidBytes("bd8d9d2b5a5f4f5aa211f591514ba1f3")).toBeUndefined();
  });
});

describe("choosing the backend", () => {
  const saved = process.env.BUN_VFIO_BACKEND;
  afterAll(() => {
    if (saved === undefined) delete process.env.BUN_VFIO_BACKEND;
    else process.env.BUN_VFIO_BACKEND = saved;
  });

  test("auto: type1 without /dev/iommu, type1 with it but no cdev nodes, iommufd with both; never noiommu", () => {
    delete process.env.BUN_VFIO_BACKEND;
    expect(chooseBackend({ root })).toEqual({ backend: "type1", reason: "the kernel has no /dev/iommu (no iommufd)" });
    put("dev/iommu");
    expect(chooseBackend({ root }).backend).toBe("type1");
    put("dev/vfio/devices/vfio3");
    expect(chooseBackend({ root })).toEqual({ backend: "iommufd", reason: "the kernel has /dev/iommu and VFIO device cdevs" });
  });

  test("by name, or by $BUN_VFIO_BACKEND; a bad value is EINVAL", () => {
    expect(chooseBackend({ root, backend: "noiommu" }).backend).toBe("noiommu");
    process.env.BUN_VFIO_BACKEND = "type1";
    expect(chooseBackend({ root })).toEqual({ backend: "type1", reason: "BUN_VFIO_BACKEND=type1" });
    process.env.BUN_VFIO_BACKEND = "vfio";
    expect(vfioError(() => chooseBackend({ root })).code).toBe("EINVAL");
    expect(vfioError(() => chooseBackend({ root, backend: "best" as never })).code).toBe("EINVAL");
  });
});

describe("the cdev of a device", () => {
  test("found through sysfs vfio-dev/ and checked in /dev; a missing node names the no-IOMMU case", () => {
    put("dev/vfio/devices/vfio3");
    expect(vfioCdevOf(BDF, { root })).toBe(join(root, "dev/vfio/devices/vfio3"));
    rmSync(join(root, "dev/vfio/devices/vfio3"));
    const err = vfioError(() => vfioCdevOf(BDF, { root }));
    expect(err.code).toBe("ENOENT");
    expect(err.hint).toContain('backend: "noiommu"');
  });

  test("a device on another driver is told to bind; an unknown address to check it", () => {
    put("sys/bus/pci/devices/0000:00:05.0/vendor", "0x1234\n");
    put("sys/bus/pci/devices/0000:00:05.0/device", "0x11e8\n");
    put("sys/bus/pci/devices/0000:00:05.0/class", "0x00ff00\n");
    expect(vfioError(() => vfioCdevOf("0000:00:05.0", { root })).hint).toContain("bun-vfio bind 0000:00:05.0");
    expect(vfioError(() => vfioCdevOf("0000:00:09.0", { root })).hint).toContain("No PCI device");
  });
});

describe("iommufd's isolation evidence", () => {
  test("bound while iommufd allow_unsafe_interrupts = N: attested, and the evidence names iommufd", () => {
    put("sys/module/iommufd/parameters/allow_unsafe_interrupts", "N\n");
    const v = detectIsolation({ root, container: { iommuType: "iommufd", attached: true } });
    expect(v.level).toBe("attested");
    expect(v.evidence[0]).toContain("bound to iommufd");
    expect(v.evidence).toContain("/sys/module/iommufd/parameters/allow_unsafe_interrupts = N");
  });

  test("with iommufd's allow_unsafe_interrupts = Y the bind proves nothing", () => {
    put("sys/module/iommufd/parameters/allow_unsafe_interrupts", "Y\n");
    const v = detectIsolation({ root, container: { iommuType: "iommufd", attached: true } });
    expect(v.level).toBe("none");
    expect(v.evidence[0]).toContain("may have skipped");
  });
});
