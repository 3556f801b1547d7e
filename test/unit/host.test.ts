import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { VfioError } from "../../src/support/errors.ts";
import {
  bindToVfio,
  groupDevicePath,
  groupMembers,
  groupViability,
  iommuGroupOf,
  isNoiommuGroup,
  listPciDevices,
  lookupPciNames,
  normalizeBdf,
  parseBdf,
  parseResourceFile,
  pciDeviceInfo,
  releaseFromVfio,
  type SysfsWriter,
} from "../../src/host/index.ts";

// ---------------------------------------------------------------- fake tree

const NVME = "0000:01:00.0";
const AUDIO = "0000:01:00.1"; // shares group 7 with NVME, bound to a DMA-using driver
const BRIDGE = "0000:00:1c.0"; // group 8, pcieport
const NIC = "0000:02:00.0"; // group 8, vfio-pci
const LONE = "0000:04:00.0"; // group 9, unbound
const NO_GROUP = "0000:03:00.0"; // no iommu_group link

const NVME_RESOURCE = [
  "0x00000000fe800000 0x00000000fe803fff 0x0000000000140204",
  "0x0000000000000000 0x0000000000000000 0x0000000000000000",
  "0x000000000000c000 0x000000000000c01f 0x0000000000040101",
  "0x0000000000000000 0x0000000000000000 0x0000000000000000",
  "0x0000000000000000 0x0000000000000000 0x0000000000000000",
  "0x0000000000000000 0x0000000000000000 0x0000000000000000",
  "0x0000000000000000 0x0000000000000000 0x0000000000000000",
].join("\n") + "\n";

const PCI_IDS = `# fake pci.ids
#	device  device_name
1b36  Red Hat, Inc.
	0001  QEMU PCI-PCI bridge
	0010  QEMU NVM Express Controller
		1af4 1100  QEMU Virtual Machine
	000d  QEMU XHCI Host Controller
1b37  Not Red Hat
	0011  Belongs to the next vendor
abcd  Müller Gerätebau GmbH
8086  Intel Corporation
	10d3  82574L Gigabit Network Connection
		8086 0000  Gigabit CT Desktop Adapter

# List of known device classes
C 01  Mass storage controller
	08  Non-Volatile memory controller
		01  NVMHCI
		02  NVM Express
	06  SATA controller
C 02  Network controller
	00  Ethernet controller
`;

let root = "";
let noIdsRoot = "";

function put(path: string, content: string | Uint8Array): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), content);
}

function link(path: string, target: string, base = root): void {
  mkdirSync(dirname(join(base, path)), { recursive: true });
  symlinkSync(target, join(base, path));
}

function addDriver(name: string, base = root): void {
  mkdirSync(join(base, "sys/bus/pci/drivers", name), { recursive: true });
  for (const file of ["bind", "unbind", "new_id"]) writeFileSync(join(base, "sys/bus/pci/drivers", name, file), "");
}

/** A device directory like the kernel's, with `driver` and `iommu_group` links relative as sysfs makes them. */
function addDevice(bdf: string, ids: { vendor: number; device: number; class: number; driver?: string; group?: number; base?: string }): void {
  const base = ids.base ?? root;
  const dir = join(base, "sys/bus/pci/devices", bdf);
  mkdirSync(dir, { recursive: true });
  const hex = (n: number, w: number) => "0x" + n.toString(16).padStart(w, "0") + "\n";
  writeFileSync(join(dir, "vendor"), hex(ids.vendor, 4));
  writeFileSync(join(dir, "device"), hex(ids.device, 4));
  writeFileSync(join(dir, "subsystem_vendor"), hex(0x1af4, 4));
  writeFileSync(join(dir, "subsystem_device"), hex(0x1100, 4));
  writeFileSync(join(dir, "class"), hex(ids.class, 6));
  writeFileSync(join(dir, "revision"), hex(2, 2));
  writeFileSync(join(dir, "numa_node"), "-1\n");
  writeFileSync(join(dir, "driver_override"), "(null)\n");
  writeFileSync(join(dir, "resource"), NVME_RESOURCE);
  writeFileSync(join(dir, "config"), new Uint8Array(256));
  if (ids.driver) {
    addDriver(ids.driver, base);
    symlinkSync(`../../drivers/${ids.driver}`, join(dir, "driver"));
  }
  if (ids.group !== undefined) {
    symlinkSync(`../../../../kernel/iommu_groups/${ids.group}`, join(dir, "iommu_group"));
    link(`sys/kernel/iommu_groups/${ids.group}/devices/${bdf}`, `../../../../bus/pci/devices/${bdf}`, base);
  }
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "bun-vfio-host-"));
  addDevice(NVME, { vendor: 0x1b36, device: 0x0010, class: 0x010802, driver: "nvme", group: 7 });
  addDevice(AUDIO, { vendor: 0x8086, device: 0x10d3, class: 0x040300, driver: "snd_hda_intel", group: 7 });
  addDevice(BRIDGE, { vendor: 0x1b36, device: 0x0001, class: 0x060400, driver: "pcieport", group: 8 });
  addDevice(NIC, { vendor: 0x8086, device: 0x10d3, class: 0x020000, driver: "vfio-pci", group: 8 });
  addDevice(LONE, { vendor: 0x1b36, device: 0x000d, class: 0x0c0330, group: 9 });
  addDevice(NO_GROUP, { vendor: 0x1234, device: 0x11e8, class: 0x00ff00 });
  put("sys/kernel/iommu_groups/10/name", "vfio-noiommu\n");
  mkdirSync(join(root, "sys/kernel/iommu_groups/10/devices"), { recursive: true });
  put("dev/vfio/8", "");
  put("dev/vfio/noiommu-10", "");
  put("dev/vfio/vfio", "");
  put("sys/bus/pci/drivers_probe", "");
  put("usr/share/misc/pci.ids", PCI_IDS);

  noIdsRoot = mkdtempSync(join(tmpdir(), "bun-vfio-noids-"));
  addDevice(NVME, { vendor: 0x1b36, device: 0x0010, class: 0x010802, base: noIdsRoot });
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(noIdsRoot, { recursive: true, force: true });
});

/** Calls `fn` and returns the VfioError it throws. */
function caught(fn: () => unknown): VfioError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(VfioError);
    return err as VfioError;
  }
  throw new Error("expected a VfioError");
}

// ---------------------------------------------------------------- BDF

describe("parseBdf", () => {
  test("accepts the full form, the short form and uppercase hex", () => {
    expect(normalizeBdf("0000:01:00.0")).toBe("0000:01:00.0");
    expect(normalizeBdf("01:00.0")).toBe("0000:01:00.0");
    expect(normalizeBdf("0000:AF:1F.7")).toBe("0000:af:1f.7");
    expect(normalizeBdf("  3a:00.1\n")).toBe("0000:3a:00.1");
    expect(normalizeBdf("10000:e1:00.0")).toBe("10000:e1:00.0"); // Intel VMD domain
  });

  test("splits the fields", () => {
    expect(parseBdf("0001:02:03.4")).toEqual({ domain: 1, bus: 2, device: 3, function: 4, text: "0001:02:03.4" });
  });

  test.each(["", "1:00.0", "01:00", "01:00.8", "01:20.0", "0000:01:00.0.0", "000:01:00.0", "gg:00.0", "0000-01-00.0", "01.00.0"])(
    "rejects %p with EINVAL and a hint",
    (input) => {
      const err = caught(() => parseBdf(input));
      expect(err.code).toBe("EINVAL");
      expect(err.errno).toBe(22);
      expect(err.hint).toContain("0000:01:00.0");
      expect(err.hint).toContain("bunx bun-vfio list");
      expect(err.hint).toContain("lspci -D");
    },
  );
});

// ---------------------------------------------------------------- devices

describe("listPciDevices / pciDevice", () => {
  test("lists every device, sorted, with ids, driver, group and override", () => {
    const devices = listPciDevices({ root });
    expect(devices.map((d) => d.bdf)).toEqual([BRIDGE, NVME, AUDIO, NIC, NO_GROUP, LONE]);
    const nvme = devices.find((d) => d.bdf === NVME)!;
    expect(nvme).toMatchObject({
      vendorId: 0x1b36,
      deviceId: 0x0010,
      subsystemVendorId: 0x1af4,
      subsystemDeviceId: 0x1100,
      classCode: 0x010802,
      revision: 2,
      driver: "nvme",
      iommuGroup: 7,
      numaNode: -1,
      driverOverride: undefined,
    });
    expect(devices.find((d) => d.bdf === LONE)!.driver).toBeUndefined();
    expect(devices.find((d) => d.bdf === NO_GROUP)!.iommuGroup).toBeUndefined();
  });

  test("parses the resource file into BAR windows", () => {
    const { resources } = pciDeviceInfo(NVME, { root });
    expect(resources).toHaveLength(7);
    expect(resources[0]).toEqual({
      index: 0,
      start: 0xfe800000n,
      end: 0xfe803fffn,
      flags: 0x140204n,
      size: 0x4000n,
      kind: "mem",
      prefetchable: false,
      is64Bit: true,
    });
    expect(resources[1]).toMatchObject({ size: 0n, kind: "unused" });
    expect(resources[2]).toMatchObject({ start: 0xc000n, size: 0x20n, kind: "io", is64Bit: false });
  });

  test("parseResourceFile ignores blank and malformed lines", () => {
    expect(parseResourceFile("\n0x1000 0x1fff 0x200\ngarbage\n")).toEqual([
      { index: 0, start: 0x1000n, end: 0x1fffn, flags: 0x200n, size: 0x1000n, kind: "mem", prefetchable: false, is64Bit: false },
    ]);
  });

  test("accepts the short address form", () => {
    expect(pciDeviceInfo("01:00.0", { root }).bdf).toBe(NVME);
  });

  test("names come from pci.ids: vendor, device, subsystem and class", () => {
    expect(pciDeviceInfo(NVME, { root }).names).toEqual({
      vendor: "Red Hat, Inc.",
      device: "QEMU NVM Express Controller",
      subsystem: "QEMU Virtual Machine",
      class: "Mass storage controller",
      subclass: "Non-Volatile memory controller",
      progIf: "NVM Express",
    });
  });

  test("a name lookup never reads into the next vendor's or class's block", () => {
    expect(lookupPciNames({ vendorId: 0x1b36, deviceId: 0x0011, classCode: 0x010603 }, { root })).toEqual({
      vendor: "Red Hat, Inc.",
      device: undefined,
      class: "Mass storage controller",
      subclass: "SATA controller",
      progIf: undefined,
    });
    // 8086:10d3 with a subsystem that only exists under another device stays unnamed.
    expect(lookupPciNames({ vendorId: 0x8086, deviceId: 0x10d3, subsystemVendorId: 0x1af4, subsystemDeviceId: 0x1100 }, { root }).subsystem).toBeUndefined();
    expect(lookupPciNames({ vendorId: 0xabce, deviceId: 1 }, { root })).toEqual({});
    expect(lookupPciNames({ vendorId: 0xabcd, deviceId: 1 }, { root }).vendor).toBe("Müller Gerätebau GmbH");
  });

  test("without a pci.ids every name is undefined", () => {
    const [nvme] = listPciDevices({ root: noIdsRoot });
    expect(nvme!.names).toEqual({});
    expect(nvme!.driver).toBeUndefined();
  });

  test("a missing device is ENODEV with a hint naming the list commands", () => {
    const err = caught(() => pciDeviceInfo("0000:09:00.0", { root }));
    expect(err.code).toBe("ENODEV");
    expect(err.errno).toBe(19);
    expect(err.path).toBe(join(root, "sys/bus/pci/devices/0000:09:00.0"));
    expect(err.hint).toContain("bunx bun-vfio list");
  });

  test("a bad address is EINVAL before sysfs is touched", () => {
    expect(caught(() => pciDeviceInfo("nvme0", { root })).code).toBe("EINVAL");
  });

  test("a root without sysfs is ENOENT naming the directory", () => {
    const err = caught(() => listPciDevices({ root: join(root, "nowhere") }));
    expect(err.code).toBe("ENOENT");
    expect(err.errno).toBe(2);
    expect(err.path).toBe(join(root, "nowhere/sys/bus/pci/devices"));
  });
});

// ---------------------------------------------------------------- groups

describe("IOMMU groups", () => {
  test("iommuGroupOf follows the iommu_group link", () => {
    expect(iommuGroupOf(NVME, { root })).toBe(7);
    expect(iommuGroupOf("02:00.0", { root })).toBe(8);
  });

  test("a device without a group gets the enable-the-IOMMU hint", () => {
    const err = caught(() => iommuGroupOf(NO_GROUP, { root }));
    expect(err.code).toBe("ENOENT");
    expect(err.path).toBe(join(root, "sys/bus/pci/devices", NO_GROUP, "iommu_group"));
    expect(err.hint).toContain("intel_iommu=on");
    expect(err.hint).toContain("amd_iommu=on");
    expect(err.hint).toContain("noiommu");
  });

  test("iommuGroupOf a missing device is ENODEV, of a bad address EINVAL", () => {
    expect(caught(() => iommuGroupOf("0000:09:00.0", { root })).code).toBe("ENODEV");
    expect(caught(() => iommuGroupOf("nope", { root })).code).toBe("EINVAL");
  });

  test("groupMembers lists each device with its driver", () => {
    expect(groupMembers(7, { root })).toEqual([
      { bdf: NVME, driver: "nvme" },
      { bdf: AUDIO, driver: "snd_hda_intel" },
    ]);
    expect(groupMembers(9, { root })).toEqual([{ bdf: LONE, driver: undefined }]);
  });

  test("groupMembers of a missing group is ENOENT; a negative group is EINVAL", () => {
    const err = caught(() => groupMembers(42, { root }));
    expect(err.code).toBe("ENOENT");
    expect(err.hint).toContain("/sys/kernel/iommu_groups");
    expect(caught(() => groupMembers(-1, { root })).code).toBe("EINVAL");
  });

  test("viability names every member bound to a DMA-using driver", () => {
    const seven = groupViability(7, { root });
    expect(seven.viable).toBe(false);
    expect(seven.blockers).toEqual([
      { bdf: NVME, driver: "nvme" },
      { bdf: AUDIO, driver: "snd_hda_intel" },
    ]);
  });

  test("vfio-pci, pcieport and unbound devices do not block", () => {
    expect(groupViability(8, { root })).toMatchObject({ viable: true, blockers: [] });
    expect(groupViability(9, { root })).toMatchObject({ viable: true, blockers: [] });
  });

  test("groupDevicePath picks /dev/vfio/N or /dev/vfio/noiommu-N", () => {
    expect(groupDevicePath(8, { root })).toBe(join(root, "dev/vfio/8"));
    expect(isNoiommuGroup(10, { root })).toBe(true);
    expect(isNoiommuGroup(8, { root })).toBe(false);
    expect(groupDevicePath(10, { root })).toBe(join(root, "dev/vfio/noiommu-10"));
  });

  test("groupDevicePath without a node says to bind vfio-pci first", () => {
    const err = caught(() => groupDevicePath(7, { root }));
    expect(err.code).toBe("ENOENT");
    expect(err.path).toBe(join(root, "dev/vfio/7"));
    expect(err.hint).toContain("vfio-pci");
  });
});

// ---------------------------------------------------------------- bind / release

/** A scratch tree with one NVMe device bound to `nvme`, for tests that change bindings. */
function bindTree(withVfioDriver = true): { base: string; dir: string } {
  const base = mkdtempSync(join(tmpdir(), "bun-vfio-bind-"));
  addDevice(NVME, { vendor: 0x1b36, device: 0x0010, class: 0x010802, driver: "nvme", group: 7, base });
  if (withVfioDriver) addDriver("vfio-pci", base);
  writeFileSync(join(base, "sys/bus/pci/drivers_probe"), "");
  return { base, dir: join(base, "sys/bus/pci/devices", NVME) };
}

/**
 * A writer that records each write (path relative to the tree) and then acts
 * like the kernel: unbind drops the driver link, drivers_probe binds the
 * override or else the native driver, bind binds that driver.
 */
function fakeKernel(base: string, nativeDriver = "nvme"): { write: SysfsWriter; log: [string, string][] } {
  const log: [string, string][] = [];
  const write: SysfsWriter = (path, value) => {
    log.push([path.slice(base.length + 1), value]);
    const bdf = value.trim();
    const dev = join(base, "sys/bus/pci/devices", bdf, "driver");
    if (basename(path) === "driver_override") {
      writeFileSync(path, value.trim() === "" ? "(null)\n" : value + "\n");
    } else if (basename(path) === "unbind") {
      unlinkSync(dev);
    } else if (basename(path) === "drivers_probe") {
      const override = readFileSync(join(base, "sys/bus/pci/devices", bdf, "driver_override"), "utf8").trim();
      const driver = override !== "(null)" ? override : nativeDriver;
      if (!existsSync(dev)) symlinkSync(`../../drivers/${driver}`, dev);
    } else if (basename(path) === "bind") {
      if (!existsSync(dev)) symlinkSync(`../../drivers/${basename(dirname(path))}`, dev);
    }
  };
  return { write, log };
}

describe("bindToVfio / releaseFromVfio", () => {
  test("bind writes override, unbind, drivers_probe in that order and checks the result", () => {
    const { base, dir } = bindTree();
    const kernel = fakeKernel(base);
    const result = bindToVfio("01:00.0", { root: base, write: kernel.write });
    expect(result).toEqual({ bdf: NVME, previousDriver: "nvme", alreadyBound: false });
    expect(kernel.log).toEqual([
      [`sys/bus/pci/devices/${NVME}/driver_override`, "vfio-pci"],
      [`sys/bus/pci/devices/${NVME}/driver/unbind`, NVME],
      ["sys/bus/pci/drivers_probe", NVME],
    ]);
    expect(basename(readlinkSync(join(dir, "driver")))).toBe("vfio-pci");
    rmSync(base, { recursive: true });
  });

  test("release unbinds vfio-pci, clears the override and re-probes so nvme returns", () => {
    const { base, dir } = bindTree();
    const kernel = fakeKernel(base);
    const { previousDriver } = bindToVfio(NVME, { root: base, write: kernel.write });
    kernel.log.length = 0;
    expect(releaseFromVfio(NVME, { root: base, write: kernel.write, previousDriver })).toEqual({ bdf: NVME, driver: "nvme" });
    expect(kernel.log).toEqual([
      [`sys/bus/pci/devices/${NVME}/driver/unbind`, NVME],
      [`sys/bus/pci/devices/${NVME}/driver_override`, "\n"],
      ["sys/bus/pci/drivers_probe", NVME],
    ]);
    expect(basename(readlinkSync(join(dir, "driver")))).toBe("nvme");
    rmSync(base, { recursive: true });
  });

  test("release binds the previous driver by hand when the probe leaves the device unbound", () => {
    const { base } = bindTree();
    addDriver("nvme-custom", base);
    const kernel = fakeKernel(base);
    bindToVfio(NVME, { root: base, write: kernel.write });
    kernel.log.length = 0;
    // No driver matches on probe here: the kernel leaves it driverless.
    const quiet = fakeKernel(base, "none-matches");
    const probeNothing: SysfsWriter = (path, value) => {
      if (basename(path) === "drivers_probe") return void quiet.log.push([path.slice(base.length + 1), value]);
      quiet.write(path, value);
    };
    expect(releaseFromVfio(NVME, { root: base, write: probeNothing, previousDriver: "nvme-custom" }).driver).toBe("nvme-custom");
    expect(quiet.log.at(-1)).toEqual(["sys/bus/pci/drivers/nvme-custom/bind", NVME]);
    rmSync(base, { recursive: true });
  });

  test("binding a device already on vfio-pci writes nothing", () => {
    const writes: string[] = [];
    const result = bindToVfio(NIC, { root, write: (p) => void writes.push(p) });
    expect(result).toEqual({ bdf: NIC, previousDriver: "vfio-pci", alreadyBound: true });
    expect(releaseFromVfio(NIC, { root, write: (p) => void writes.push(p), previousDriver: "vfio-pci" }).driver).toBe("vfio-pci");
    expect(writes).toEqual([]);
  });

  test("on a tree nobody reacts to, the writes land in the files and the check fails with the modprobe hint", () => {
    const { base, dir } = bindTree();
    const err = caught(() => bindToVfio(NVME, { root: base }));
    expect(err.code).toBe("ENODEV");
    expect(err.hint).toContain("modprobe vfio-pci");
    expect(err.path).toBe(join(dir, "driver"));
    expect(readFileSync(join(base, "sys/bus/pci/drivers/nvme/unbind"), "utf8")).toBe(NVME);
    expect(readFileSync(join(base, "sys/bus/pci/drivers_probe"), "utf8")).toBe(NVME);
    // The failed bind cleared the override again so the old driver can come back.
    expect(readFileSync(join(dir, "driver_override"), "utf8")).toBe("\n");
    rmSync(base, { recursive: true });
  });

  test("without vfio-pci loaded nothing is written and the hint says modprobe", () => {
    const { base } = bindTree(false);
    const writes: string[] = [];
    const err = caught(() => bindToVfio(NVME, { root: base, write: (p) => void writes.push(p) }));
    expect(err.code).toBe("ENODEV");
    expect(err.path).toBe(join(base, "sys/bus/pci/drivers/vfio-pci"));
    expect(err.hint).toContain("modprobe vfio-pci");
    expect(writes).toEqual([]);
    rmSync(base, { recursive: true });
  });

  test("EACCES from a sysfs write becomes a VfioError that says run as root", () => {
    const { base, dir } = bindTree();
    const denied: SysfsWriter = () => {
      throw Object.assign(new Error("EACCES: permission denied, open"), { code: "EACCES", errno: -13 });
    };
    const err = caught(() => bindToVfio(NVME, { root: base, write: denied }));
    expect(err).toMatchObject({ op: "bindToVfio", code: "EACCES", errno: 13, path: join(dir, "driver_override") });
    expect(err.hint).toContain("root");
    rmSync(base, { recursive: true });
  });

  test("a missing sysfs attribute is ENOENT, not a misleading EACCES", () => {
    const { base, dir } = bindTree();
    rmSync(join(dir, "driver_override"));
    const err = caught(() => bindToVfio(NVME, { root: base }));
    expect(err.code).toBe("ENOENT");
    expect(err.path).toBe(join(dir, "driver_override"));
    expect(err.hint).toContain("driver_override");
    rmSync(base, { recursive: true });
  });

  test("bind and release of a missing device are ENODEV", () => {
    expect(caught(() => bindToVfio("0000:09:00.0", { root })).code).toBe("ENODEV");
    expect(caught(() => releaseFromVfio("0000:09:00.0", { root })).code).toBe("ENODEV");
  });

  test("release throws when the previous driver cannot be restored", () => {
    const { base } = bindTree();
    const kernel = fakeKernel(base, "other");
    addDriver("other", base);
    bindToVfio(NVME, { root: base, write: kernel.write });
    const err = caught(() => releaseFromVfio(NVME, { root: base, write: kernel.write, previousDriver: "nvme" }));
    expect(err.code).toBe("ENODEV");
    expect(err.hint).toContain("modprobe nvme");
    rmSync(base, { recursive: true });
  });
});
