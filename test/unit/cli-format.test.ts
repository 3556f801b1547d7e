/**
 * The CLI's lspci-compatible formatting and filters. Expected capability
 * lines are what lspci 3.9 (Debian bookworm) printed for the same devices in
 * the remap guest; the config dumps are the captured fixtures.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../../src/cli/args.ts";
import { capabilityBracket, describeCapabilities } from "../../src/cli/capability-text.ts";
import { matchesFilters, parseIdFilter, parseSlotFilter } from "../../src/cli/filters.ts";
import { className, lspciSize, progIfText, subsystemName, vendorDeviceName } from "../../src/cli/lspci-names.ts";
import { clearPciNamesCache } from "../../src/host/pci-ids.ts";

const FIXTURES = join(import.meta.dir, "../fixtures/config");
const config = (name: string) => new Uint8Array(readFileSync(join(FIXTURES, `${name}.config.bin`)));
const lines = (name: string, v: number, d: number) => describeCapabilities(config(name), v, d).map((c) => `${capabilityBracket(c)} ${c.text}`);

describe("capabilities in lspci -vv words", () => {
  test("e1000e: PM, MSI, Express v1 RCiEP, MSI-X, AER, DSN", () => {
    expect(lines("e1000e", 0x8086, 0x10d3)).toEqual([
      "[c8] Power Management version 2",
      "[d0] MSI: Enable- Count=1/1 Maskable- 64bit+",
      "[e0] Express (v1) Root Complex Integrated Endpoint, IntMsgNum 0",
      "[a0] MSI-X: Enable- Count=5 Masked-",
      "[100 v2] Advanced Error Reporting",
      "[140 v1] Device Serial Number 52-54-00-ff-ff-12-34-56",
    ]);
    const msix = describeCapabilities(config("e1000e"), 0x8086, 0x10d3).find((c) => c.id === 0x11)!;
    expect(msix.details).toEqual(["Vector table: BAR=3 offset=00000000", "PBA: BAR=3 offset=00002000"]);
  });
  test("nvme and edu (conventional PCI, MSI only)", () => {
    expect(lines("nvme", 0x1b36, 0x0010)).toEqual([
      "[40] MSI-X: Enable- Count=65 Masked-",
      "[80] Express (v2) Root Complex Integrated Endpoint, IntMsgNum 0",
      "[60] Power Management version 3",
    ]);
    expect(lines("edu", 0x1234, 0x11e8)).toEqual(["[40] MSI: Enable- Count=1/1 Maskable- 64bit+"]);
  });
  test("virtio vendor capabilities, the PCI-cfg one as <unknown>", () => {
    expect(lines("host-1af4-1041", 0x1af4, 0x1041)).toEqual([
      "[40] Vendor Specific Information: VirtIO: CommonCfg",
      "[50] Vendor Specific Information: VirtIO: ISR",
      "[60] Vendor Specific Information: VirtIO: DeviceCfg",
      "[70] Vendor Specific Information: VirtIO: Notify",
      "[84] Vendor Specific Information: VirtIO: <unknown>",
      "[98] MSI-X: Enable+ Count=3 Masked-",
    ]);
  });
});

test("lspci sizes: the largest exact unit", () => {
  expect(lspciSize(16384n)).toBe("16K");
  expect(lspciSize(1n << 20n)).toBe("1M");
  expect(lspciSize(32n)).toBe("32");
  expect(lspciSize(256n)).toBe("256");
  expect(lspciSize(3n << 30n)).toBe("3G");
  expect(lspciSize(1536n)).toBe("1536");
});

describe("filters as lspci reads them", () => {
  const nvme = { bdf: "0000:00:03.0", vendorId: 0x1b36, deviceId: 0x0010, classCode: 0x010802 };
  const edu = { bdf: "0000:02:01.0", vendorId: 0x1234, deviceId: 0x11e8, classCode: 0x00ff00 };
  const m = (s: typeof nvme, f: ReturnType<typeof parseSlotFilter>) => matchesFilters(s, [f]);
  test("-s: device alone, bus:device, domain:bus:device.function, wildcards", () => {
    expect(m(nvme, parseSlotFilter("list", "03"))).toBe(true);
    expect(m(edu, parseSlotFilter("list", "03"))).toBe(false);
    expect(m(edu, parseSlotFilter("list", "02:"))).toBe(true);
    expect(m(edu, parseSlotFilter("list", "02:01.0"))).toBe(true);
    expect(m(edu, parseSlotFilter("list", "0000:02:01.1"))).toBe(false);
    expect(m(nvme, parseSlotFilter("list", "*:*.0"))).toBe(true);
    expect(m(nvme, parseSlotFilter("list", ".0"))).toBe(true);
    expect(m(nvme, parseSlotFilter("list", "1:00:03"))).toBe(false);
  });
  test("-d: vendor, device, class", () => {
    expect(m(nvme, parseIdFilter("list", "1b36:"))).toBe(true);
    expect(m(nvme, parseIdFilter("list", ":0010"))).toBe(true);
    expect(m(edu, parseIdFilter("list", "1b36:0010"))).toBe(false);
    expect(m(nvme, parseIdFilter("list", "::0108"))).toBe(true);
    expect(m(nvme, parseIdFilter("list", "::0108:01"))).toBe(false);
  });
  test("malformed filters are usage errors", () => {
    expect(() => parseSlotFilter("list", "zz")).toThrow(UsageError);
    expect(() => parseSlotFilter("list", "00:20")).toThrow(UsageError);
    expect(() => parseIdFilter("list", "1b36")).toThrow(UsageError);
    expect(() => parseIdFilter("list", "12345:0")).toThrow(UsageError);
  });
});

describe("names from a pci.ids, formatted like lspci -nn", () => {
  let root = "";
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "bun-vfio-names-"));
    mkdirSync(join(root, "usr/share/misc"), { recursive: true });
    writeFileSync(join(root, "usr/share/misc/pci.ids"), [
      "1af4  Red Hat, Inc.", "\t1041  Virtio 1.0 network device", "1b36  Red Hat, Inc.", "\t0010  QEMU NVM Express Controller", "\t\t1af4 1100  QEMU Virtual Machine",
      "8086  Intel Corporation", "",
      "C 00  Unclassified device", "C 01  Mass storage controller", "\t08  Non-Volatile memory controller", "\t\t02  NVM Express", "C 06  Bridge", "\t04  PCI bridge", "\t\t00  Normal decode", "",
    ].join("\n"));
    clearPciNamesCache();
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    clearPciNamesCache();
  });
  test("class: subclass name, base class fallback, unknown", () => {
    expect(className(0x010802, { root })).toBe("Non-Volatile memory controller [0108]");
    expect(className(0x00ff00, { root })).toBe("Unclassified device [00ff]");
    expect(className(0x0c0330, { root })).toBe("Class [0c03]");
  });
  test("vendor and device, known and unknown", () => {
    expect(vendorDeviceName(0x1b36, 0x0010, { root })).toBe("Red Hat, Inc. QEMU NVM Express Controller [1b36:0010]");
    expect(vendorDeviceName(0x8086, 0x0d57, { root })).toBe("Intel Corporation Device [8086:0d57]");
    expect(vendorDeviceName(0x1234, 0x11e8, { root })).toBe("Device [1234:11e8]");
  });
  test("subsystem: per-device name, device name when ids repeat, unknown", () => {
    expect(subsystemName(0x1b36, 0x0010, 0x1af4, 0x1100, { root })).toBe("Red Hat, Inc. QEMU Virtual Machine [1af4:1100]");
    expect(subsystemName(0x1af4, 0x1041, 0x1af4, 0x1041, { root })).toBe("Red Hat, Inc. Virtio 1.0 network device [1af4:1041]");
    expect(subsystemName(0x1234, 0x11e8, 0x1af4, 0x1100, { root })).toBe("Red Hat, Inc. Device [1af4:1100]");
  });
  test("prog-if: shown when non-zero or named", () => {
    expect(progIfText(0x010802, { root })).toBe(" (prog-if 02 [NVM Express])");
    expect(progIfText(0x060400, { root })).toBe(" (prog-if 00 [Normal decode])");
    expect(progIfText(0x00ff00, { root })).toBe("");
  });
});
