/**
 * The errors users actually hit, outside a VFIO host: each one a VfioError
 * with op, errno name, path and a hint that says what to do. The same paths
 * are exercised against the real kernel by the guest suites.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Container, Group, MappedMemory } from "../../src/index.ts";
import { attachHints } from "../../src/iommu/group.ts";
import { syscallError } from "../../src/sys/check.ts";
import { openPath } from "../../src/sys/fd.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, O_RDWR } from "../../src/sys/constants.ts";
import { OwnedFd } from "../../src/sys/owned-fd.ts";
import { vfioError } from "../vfio-error.ts";

// A fake sysfs: one NVMe device in IOMMU group 7, bound to the nvme driver, with no /dev/vfio/7.
const root = mkdtempSync(join(tmpdir(), "bun-vfio-errors-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const bdf = "0000:01:00.0";
const dev = join(root, "sys/bus/pci/devices", bdf);
mkdirSync(dev, { recursive: true });
mkdirSync(join(root, "sys/kernel/iommu_groups/7/devices"), { recursive: true });
mkdirSync(join(root, "sys/bus/pci/drivers/nvme"), { recursive: true });
mkdirSync(join(root, "dev/vfio"), { recursive: true });
for (const [name, value] of Object.entries({ vendor: "0x1b36", device: "0x0010", class: "0x010802", resource: "" })) writeFileSync(join(dev, name), `${value}\n`);
symlinkSync("../../../kernel/iommu_groups/7", join(dev, "iommu_group"));
symlinkSync("../../../bus/pci/drivers/nvme", join(dev, "driver"));

describe("errors users hit", () => {
  test("VFIO not loaded: no container node", () => {
    const err = vfioError(() => Container.open({ path: join(root, "dev/vfio/vfio") }));
    expect(err).toMatchObject({ op: "open container", code: "ENOENT", errno: 2, path: join(root, "dev/vfio/vfio") });
    expect(err.hint).toContain("modprobe vfio-pci");
  });

  test("a device bound to its own driver: the hint names the driver and the fix", () => {
    const err = vfioError(() => Group.open(bdf, { root }));
    expect(err.code).toBe("ENOENT");
    expect(err.hint).toContain("bound to nvme, not vfio-pci");
    expect(err.hint).toContain(`bun-vfio bind ${bdf}`);
  });

  test("bad and unknown PCI addresses", () => {
    expect(vfioError(() => Group.open("01:00", { root })).code).toBe("EINVAL");
    expect(vfioError(() => Group.open("0000:09:00.0", { root })).code).toBe("ENODEV");
  });

  test("EACCES, EPERM (no interrupt remapping) and EBUSY carry hints that say what to do", () => {
    expect(syscallError("open group", "/dev/vfio/7", {}, 13).hint).toContain("run as root");
    const eperm = syscallError("VFIO_SET_IOMMU", "/dev/vfio/vfio", attachHints(), 1);
    expect(eperm).toMatchObject({ code: "EPERM", errno: 1 });
    expect(eperm.hint).toContain("allow_unsafe_interrupts");
    expect(syscallError("VFIO_GROUP_SET_CONTAINER", "/dev/vfio/7", attachHints(), 16).hint).toContain("already attached");
    expect(eperm.message).toContain("Operation not permitted");
  });

  test("a real failing ioctl reports the errno the kernel set", () => {
    const fd = new OwnedFd(openPath("/dev/null", O_RDWR), "/dev/null", "device");
    const err = vfioError(() => fd.ioctl("VFIO_DEVICE_GET_INFO", 0x3b6b, new Uint8Array(20)));
    expect(err).toMatchObject({ op: "VFIO_DEVICE_GET_INFO", code: "ENOTTY", errno: 25, path: "/dev/null" });
    fd.close();
  });

  test("out-of-range and misaligned accesses, then use after unmap", () => {
    const mem = MappedMemory.mapAnonymous(4096, MAP_ANONYMOUS | MAP_PRIVATE);
    expect(vfioError(() => mem.read32(4096)).code).toBe("EINVAL");
    expect(vfioError(() => mem.read32(-4)).code).toBe("EINVAL");
    expect(vfioError(() => mem.write64(4, 1n)).message).toContain("not aligned");
    expect(vfioError(() => mem.read16(1.5)).code).toBe("EINVAL");
    mem.write32(8, 0xcafe);
    expect(mem.read32(8)).toBe(0xcafe);
    const view = mem.bytes;
    mem.close();
    mem.close();
    expect(view.byteLength).toBe(0); // detached: no way to touch unmapped memory
    expect(vfioError(() => mem.read32(8)).code).toBe("ECLOSED");
    expect(vfioError(() => mem.address).code).toBe("ECLOSED");
  });

  test("use after close of an fd owner; close is idempotent", () => {
    const fd = new OwnedFd(openPath("/dev/null", O_RDWR), "/dev/null", "group");
    fd.close();
    fd.close();
    const err = vfioError(() => fd.ioctl("VFIO_GROUP_GET_STATUS", 0x3b67, new Uint8Array(8)));
    expect(err).toMatchObject({ code: "ECLOSED", path: "/dev/null" });
    expect(err.hint).toContain("Open the group again");
  });
});
