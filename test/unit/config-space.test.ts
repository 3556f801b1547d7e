import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeBars } from "../../src/pci/bars.ts";
import {
  capabilityName,
  decodeMsi,
  decodeMsix,
  extendedCapabilities,
  findCapability,
  findExtendedCapability,
  listCapabilities,
  msixSizes,
  PciCapId,
  PciExtCapId,
  standardCapabilities,
} from "../../src/pci/capabilities.ts";
import { parseConfigHeader, PciCommand, PciStatus } from "../../src/pci/config-space.ts";
import { VfioError } from "../../src/support/errors.ts";
import { parseResourceFile } from "../../src/host/pci.ts";

const FIXTURES = join(import.meta.dir, "../fixtures/config");

function fixture(name: string): { config: Uint8Array; resources: ReturnType<typeof parseResourceFile> } | undefined {
  const configPath = join(FIXTURES, `${name}.config.bin`);
  if (!existsSync(configPath)) return undefined;
  const resourcePath = join(FIXTURES, `${name}.resource.txt`);
  return {
    config: new Uint8Array(readFileSync(configPath)),
    resources: existsSync(resourcePath) ? parseResourceFile(readFileSync(resourcePath, "utf8")) : [],
  };
}

/** Standard capabilities as [id, offset] pairs, in list order. */
const chain = (bytes: Uint8Array) => standardCapabilities(bytes).map((c) => [c.id, c.offset]);
const extChain = (bytes: Uint8Array) => extendedCapabilities(bytes).map((c) => [c.id, c.offset, c.version]);

function put16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >> 8) & 0xff;
}

function put32(bytes: Uint8Array, offset: number, value: number): void {
  put16(bytes, offset, value & 0xffff);
  put16(bytes, offset + 2, value >>> 16);
}

/** A type 0 header with CAP_LIST set and the capability pointer at `firstCap` (0 for none). */
function blankConfig(size = 256, firstCap = 0): Uint8Array {
  const bytes = new Uint8Array(size);
  put16(bytes, 0x00, 0x1234);
  put16(bytes, 0x02, 0x5678);
  if (firstCap) {
    put16(bytes, 0x06, PciStatus.CAP_LIST);
    bytes[0x34] = firstCap;
  }
  return bytes;
}

// Every BAR the kernel lists in `resource` must show the same bus address in
// config space (x86: bus address == CPU physical address).
function expectBarsMatchResources(config: Uint8Array, resources: ReturnType<typeof parseResourceFile>): void {
  for (const bar of decodeBars(config)) {
    const resource = resources[bar.index];
    if (bar.kind === "mem32" || bar.kind === "mem64" || bar.kind === "io") {
      expect(resource?.start).toBe(bar.address);
      expect(resource?.kind).toBe(bar.kind === "io" ? "io" : "mem");
    }
  }
}

// ------------------------------------------------- this machine's devices
// Dumps of /sys/bus/pci/devices/*/config from the Firecracker VM the unit
// tests were written on. Expected values were decoded by hand with xxd.

describe("host fixture: virtio-net 1af4:1041", () => {
  const dump = fixture("host-1af4-1041")!;

  test("header", () => {
    expect(parseConfigHeader(dump.config)).toEqual({
      vendorId: 0x1af4,
      deviceId: 0x1041,
      command: 0x0406,
      status: 0x0010,
      revision: 0x01,
      classCode: 0x020000,
      baseClass: 0x02,
      subclass: 0x00,
      progIf: 0x00,
      cacheLineSize: 0,
      latencyTimer: 0,
      headerType: 0,
      multiFunction: false,
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1041,
      capabilitiesPointer: 0x40,
      interruptLine: 0,
      interruptPin: 0,
    });
    const { command, status } = parseConfigHeader(dump.config);
    expect(command & PciCommand.MEMORY).toBeTruthy();
    expect(command & PciCommand.BUS_MASTER).toBeTruthy();
    expect(command & PciCommand.INTX_DISABLE).toBeTruthy();
    expect(command & PciCommand.IO).toBe(0);
    expect(status & PciStatus.CAP_LIST).toBeTruthy();
    expect(status & PciStatus.INTX_STATUS).toBe(0);
  });

  test("five virtio vendor capabilities, then MSI-X; no extended space in 256 bytes", () => {
    expect(chain(dump.config)).toEqual([
      [0x09, 0x40],
      [0x09, 0x50],
      [0x09, 0x60],
      [0x09, 0x70],
      [0x09, 0x84],
      [0x11, 0x98],
    ]);
    expect(standardCapabilities(dump.config)[5]!.name).toBe("MSI-X");
    expect(standardCapabilities(dump.config)[0]!.name).toBe("Vendor-Specific");
    expect(extendedCapabilities(dump.config)).toEqual([]);
    expect(decodeMsi(dump.config)).toBeUndefined();
  });

  test("MSI-X: 3 vectors, enabled, table and PBA in BAR0", () => {
    const msix = decodeMsix(dump.config)!;
    expect(msix).toEqual({ offset: 0x98, tableSize: 3, enabled: true, functionMasked: false, tableBar: 0, tableOffset: 0x8000, pbaBar: 0, pbaOffset: 0x48000 });
    expect(msixSizes(msix)).toEqual({ tableBytes: 48, pbaBytes: 8 });
    expect(BigInt(msix.pbaOffset + 8)).toBeLessThanOrEqual(dump.resources[0]!.size);
  });

  test("BAR0 is a 64-bit memory BAR at the address sysfs reports", () => {
    const bars = decodeBars(dump.config);
    expect(bars[0]).toEqual({ index: 0, kind: "mem64", prefetchable: false, address: 0x4000100000n, raw: 0x00100004 });
    expect(bars[1]).toEqual({ index: 1, kind: "unused", prefetchable: false, address: 0n, upperHalfOf: 0, raw: 0x40 });
    expect(bars.slice(2).map((b) => b.kind)).toEqual(["unused", "unused", "unused", "unused"]);
    expectBarsMatchResources(dump.config, dump.resources);
  });
});

describe("host fixture: virtio-blk 1af4:1042", () => {
  const dump = fixture("host-1af4-1042")!;

  test("header, capabilities and a 2-vector MSI-X", () => {
    expect(parseConfigHeader(dump.config)).toMatchObject({ vendorId: 0x1af4, deviceId: 0x1042, classCode: 0x018000, subsystemId: 0x1042 });
    expect(chain(dump.config).map(([id]) => id)).toEqual([9, 9, 9, 9, 9, 0x11]);
    expect(decodeMsix(dump.config)).toMatchObject({ tableSize: 2, enabled: true, tableBar: 0, tableOffset: 0x8000, pbaBar: 0, pbaOffset: 0x48000 });
    expect(decodeBars(dump.config)[0]!.address).toBe(0x4000080000n);
    expectBarsMatchResources(dump.config, dump.resources);
  });
});

describe("host fixture: host bridge 8086:0d57 (4096 bytes, no capabilities)", () => {
  const dump = fixture("host-8086-0d57")!;

  test("no CAP_LIST, an all-zero extended header, no BARs", () => {
    expect(dump.config.length).toBe(4096);
    expect(parseConfigHeader(dump.config)).toMatchObject({ vendorId: 0x8086, deviceId: 0x0d57, classCode: 0x060000, status: 0, capabilitiesPointer: 0 });
    expect(listCapabilities(dump.config)).toEqual([]);
    expect(decodeMsix(dump.config)).toBeUndefined();
    expect(decodeBars(dump.config).every((b) => b.kind === "unused")).toBe(true);
  });
});

// ------------------------------------------------- QEMU devices (from the guest)
// Expected layouts come from QEMU's sources, not from the code under test:
// hw/nvme/ctrl.c nvme_init_pci (PM at 0x60, PCIe at 0x80, MSI-X placed by
// pci_add_capability at the first free 0x40; msix_qsize 65; table at 0x2000 and
// PBA at 0x3000 of a 16 KiB BAR0 from nvme_mbar_size with max_ioqpairs 64),
// hw/net/e1000e.c e1000e_pci_realize (MSI-X 0xa0 with 5 vectors in BAR3 at
// 0/0x2000, PCIe 0xe0, MSI 0xd0, PM 0xc8, AER 0x100, DSN 0x140) and
// hw/misc/edu.c (one 64-bit MSI vector, 1 MiB BAR0). pci_add_capability links
// each new capability at the head, so the list runs in reverse order of creation.
// Devices that set no subsystem ids get QEMU's default 1af4:1100 (hw/pci/pci.c).

const nvme = fixture("nvme");
describe.skipIf(!nvme)("QEMU nvme 1b36:0010", () => {
  test("header", () => {
    expect(parseConfigHeader(nvme!.config)).toMatchObject({ vendorId: 0x1b36, deviceId: 0x0010, revision: 0x02, classCode: 0x010802, headerType: 0, subsystemVendorId: 0x1af4, subsystemId: 0x1100, interruptPin: 1 });
  });
  test("capabilities: MSI-X, PCIe, PM; no extended ones", () => {
    expect(chain(nvme!.config)).toEqual([
      [PciCapId.MSIX, 0x40],
      [PciCapId.EXP, 0x80],
      [PciCapId.PM, 0x60],
    ]);
    expect(extendedCapabilities(nvme!.config)).toEqual([]);
    expect(decodeMsi(nvme!.config)).toBeUndefined();
  });
  test("MSI-X: 65 vectors, table at 0x2000 and PBA at 0x3000 of BAR0", () => {
    const msix = decodeMsix(nvme!.config)!;
    expect(msix).toMatchObject({ offset: 0x40, tableSize: 65, tableBar: 0, tableOffset: 0x2000, pbaBar: 0, pbaOffset: 0x3000 });
    expect(msixSizes(msix)).toEqual({ tableBytes: 1040, pbaBytes: 16 });
  });
  test("BAR0: 64-bit, non-prefetchable, 16 KiB", () => {
    const bars = decodeBars(nvme!.config);
    expect(bars[0]).toMatchObject({ kind: "mem64", prefetchable: false });
    expect(bars[1]).toMatchObject({ kind: "unused", upperHalfOf: 0 });
    expect(nvme!.resources[0]!.size).toBe(0x4000n);
    expectBarsMatchResources(nvme!.config, nvme!.resources);
  });
});

const e1000e = fixture("e1000e");
describe.skipIf(!e1000e)("QEMU e1000e 8086:10d3", () => {
  test("header", () => {
    expect(parseConfigHeader(e1000e!.config)).toMatchObject({ vendorId: 0x8086, deviceId: 0x10d3, revision: 0, classCode: 0x020000, subsystemVendorId: 0x8086, subsystemId: 0, interruptPin: 1 });
  });
  test("capabilities: PM, MSI, PCIe, MSI-X; then AER and DSN", () => {
    expect(chain(e1000e!.config)).toEqual([
      [PciCapId.PM, 0xc8],
      [PciCapId.MSI, 0xd0],
      [PciCapId.EXP, 0xe0],
      [PciCapId.MSIX, 0xa0],
    ]);
    expect(extChain(e1000e!.config)).toEqual([
      [PciExtCapId.ERR, 0x100, 2],
      [PciExtCapId.DSN, 0x140, 1],
    ]);
  });
  test("MSI-X: 5 vectors, table at 0 and PBA at 0x2000 of BAR3", () => {
    expect(decodeMsix(e1000e!.config)).toMatchObject({ offset: 0xa0, tableSize: 5, tableBar: 3, tableOffset: 0, pbaBar: 3, pbaOffset: 0x2000 });
  });
  test("MSI: one vector, 64-bit, no per-vector masking", () => {
    expect(decodeMsi(e1000e!.config)).toMatchObject({ offset: 0xd0, multipleMessageCapable: 1, is64Bit: true, perVectorMasking: false });
  });
  test("BARs: mem32 128 KiB, mem32 128 KiB flash, 32 I/O ports, mem32 16 KiB MSI-X", () => {
    expect(decodeBars(e1000e!.config).map((b) => b.kind)).toEqual(["mem32", "mem32", "io", "mem32", "unused", "unused"]);
    expect(e1000e!.resources.slice(0, 4).map((r) => r.size)).toEqual([0x20000n, 0x20000n, 0x20n, 0x4000n]);
    expectBarsMatchResources(e1000e!.config, e1000e!.resources);
  });
});

const edu = fixture("edu");
describe.skipIf(!edu)("QEMU edu 1234:11e8", () => {
  test("header: conventional PCI, 256 bytes", () => {
    expect(edu!.config.length).toBe(256);
    expect(parseConfigHeader(edu!.config)).toMatchObject({ vendorId: 0x1234, deviceId: 0x11e8, revision: 0x10, classCode: 0x00ff00, subsystemVendorId: 0x1af4, subsystemId: 0x1100, interruptPin: 1 });
  });
  test("MSI only: one vector, 64-bit, no masking", () => {
    expect(chain(edu!.config)).toEqual([[PciCapId.MSI, 0x40]]);
    expect(decodeMsix(edu!.config)).toBeUndefined();
    expect(decodeMsi(edu!.config)).toMatchObject({ offset: 0x40, multipleMessageCapable: 1, is64Bit: true, perVectorMasking: false, dataOffset: 0x0c, maskOffset: undefined });
  });
  test("BAR0: 32-bit, non-prefetchable, 1 MiB", () => {
    expect(decodeBars(edu!.config).map((b) => b.kind)).toEqual(["mem32", "unused", "unused", "unused", "unused", "unused"]);
    expect(edu!.resources[0]!.size).toBe(0x100000n);
    expectBarsMatchResources(edu!.config, edu!.resources);
  });
});

// ------------------------------------------------- corrupted capability lists

describe("standard capability walk is loop-safe", () => {
  const base = () => fixture("host-1af4-1041")!.config.slice();

  test("a cycle back to the first entry stops after one lap", () => {
    const bytes = base();
    bytes[0x99] = 0x40;
    expect(chain(bytes).map(([, offset]) => offset)).toEqual([0x40, 0x50, 0x60, 0x70, 0x84, 0x98]);
  });

  test("a capability pointing at itself is listed once", () => {
    const bytes = base();
    bytes[0x41] = 0x40;
    expect(chain(bytes)).toEqual([[0x09, 0x40]]);
  });

  test("a pointer into the 64-byte header ends the list", () => {
    const bytes = base();
    bytes[0x71] = 0x3c;
    expect(chain(bytes).map(([, offset]) => offset)).toEqual([0x40, 0x50, 0x60, 0x70]);
    bytes[0x34] = 0x10;
    expect(chain(bytes)).toEqual([]);
  });

  test("the low two pointer bits are ignored, as the kernel does", () => {
    const bytes = base();
    bytes[0x41] = 0x53;
    expect(chain(bytes)).toEqual(chain(base()));
  });

  test("id 0xff ends the list", () => {
    const bytes = base();
    bytes[0x60] = 0xff;
    expect(chain(bytes).map(([, offset]) => offset)).toEqual([0x40, 0x50]);
  });

  test("without Status.CAP_LIST the pointer is not followed", () => {
    const bytes = base();
    bytes[0x06] = bytes[0x06]! & ~PciStatus.CAP_LIST;
    expect(standardCapabilities(bytes)).toEqual([]);
    expect(parseConfigHeader(bytes).capabilitiesPointer).toBe(0);
  });

  test("a pointer past the bytes given ends the list", () => {
    expect(standardCapabilities(base().slice(0, 64))).toEqual([]);
    const bytes = base().slice(0, 0x80);
    expect(chain(bytes).map(([, offset]) => offset)).toEqual([0x40, 0x50, 0x60, 0x70]);
  });

  test("at most 48 entries: a list through every slot of 0x40-0xfc that loops", () => {
    const bytes = blankConfig(256, 0x40);
    for (let offset = 0x40; offset <= 0xfc; offset += 4) {
      bytes[offset] = PciCapId.VNDR;
      bytes[offset + 1] = offset === 0xfc ? 0x40 : offset + 4;
    }
    const caps = standardCapabilities(bytes);
    expect(caps).toHaveLength(48);
    expect(new Set(caps.map((c) => c.offset)).size).toBe(48);
  });

  test("config space where nothing answers (all ones) has no capabilities", () => {
    const bytes = new Uint8Array(4096).fill(0xff);
    expect(parseConfigHeader(bytes).vendorId).toBe(0xffff);
    expect(listCapabilities(bytes)).toEqual([]);
  });
});

describe("extended capability walk is loop-safe", () => {
  test("a cycle stops after one lap; versions are decoded", () => {
    const bytes = blankConfig(4096);
    put32(bytes, 0x100, (0x140 << 20) | (2 << 16) | PciExtCapId.ERR);
    put32(bytes, 0x140, (0x100 << 20) | (1 << 16) | PciExtCapId.DSN);
    expect(extChain(bytes)).toEqual([
      [0x01, 0x100, 2],
      [0x03, 0x140, 1],
    ]);
    expect(extendedCapabilities(bytes).map((c) => c.name)).toEqual(["Advanced Error Reporting", "Device Serial Number"]);
  });

  test("a capability pointing at itself is listed once", () => {
    const bytes = blankConfig(4096);
    put32(bytes, 0x100, (0x100 << 20) | (1 << 16) | PciExtCapId.SRIOV);
    expect(extChain(bytes)).toEqual([[0x10, 0x100, 1]]);
  });

  test("a next pointer into conventional space ends the list", () => {
    const bytes = blankConfig(4096);
    put32(bytes, 0x100, (0x0fc << 20) | (1 << 16) | PciExtCapId.ATS);
    expect(extChain(bytes)).toEqual([[0x0f, 0x100, 1]]);
  });

  test("a next pointer past the bytes given ends the list", () => {
    const bytes = blankConfig(0x200);
    put32(bytes, 0x100, (0xffc << 20) | (1 << 16) | PciExtCapId.ACS);
    expect(extChain(bytes)).toEqual([[0x0d, 0x100, 1]]);
  });

  test("header 0 or all ones means none", () => {
    expect(extendedCapabilities(blankConfig(4096))).toEqual([]);
    const bytes = blankConfig(4096);
    put32(bytes, 0x100, 0xffffffff);
    expect(extendedCapabilities(bytes)).toEqual([]);
  });

  test("an id-0 placeholder is followed but not listed", () => {
    const bytes = blankConfig(4096);
    put32(bytes, 0x100, 0x200 << 20);
    put32(bytes, 0x200, (1 << 16) | PciExtCapId.SRIOV);
    expect(extChain(bytes)).toEqual([[0x10, 0x200, 1]]);
    expect(findExtendedCapability(bytes, PciExtCapId.SRIOV)?.name).toBe("SR-IOV");
  });

  test("a 256-byte dump has no extended space", () => {
    expect(extendedCapabilities(blankConfig(256))).toEqual([]);
  });
});

// ------------------------------------------------- MSI / MSI-X decoding

describe("MSI and MSI-X decoding", () => {
  test("MSI with 8 vectors capable, 2 enabled, 64-bit, per-vector masking", () => {
    const bytes = blankConfig(256, 0x50);
    bytes[0x50] = PciCapId.MSI;
    put16(bytes, 0x52, 0x0001 | (3 << 1) | (1 << 4) | 0x0080 | 0x0100);
    expect(decodeMsi(bytes)).toEqual({
      offset: 0x50,
      enabled: true,
      multipleMessageCapable: 8,
      multipleMessageEnabled: 2,
      is64Bit: true,
      perVectorMasking: true,
      dataOffset: 0x0c,
      maskOffset: 0x10,
    });
  });

  test("32-bit MSI without masking; reserved encodings clamp to 32 vectors", () => {
    const bytes = blankConfig(256, 0x50);
    bytes[0x50] = PciCapId.MSI;
    put16(bytes, 0x52, 0x0100 | (7 << 1));
    expect(decodeMsi(bytes)).toMatchObject({ enabled: false, multipleMessageCapable: 32, is64Bit: false, dataOffset: 0x08, maskOffset: 0x0c });
  });

  test("MSI-X with 2048 vectors, function-masked, table in BAR3 and PBA in BAR5", () => {
    const bytes = blankConfig(256, 0x70);
    bytes[0x70] = PciCapId.MSIX;
    put16(bytes, 0x72, 0xc7ff);
    put32(bytes, 0x74, 0x00002003);
    put32(bytes, 0x78, 0x00010005);
    const msix = decodeMsix(bytes)!;
    expect(msix).toEqual({ offset: 0x70, tableSize: 2048, enabled: true, functionMasked: true, tableBar: 3, tableOffset: 0x2000, pbaBar: 5, pbaOffset: 0x10000 });
    expect(msixSizes(msix)).toEqual({ tableBytes: 32768, pbaBytes: 256 });
    expect(findCapability(bytes, PciCapId.MSIX)?.offset).toBe(0x70);
  });

  test("PBA sizes round up to whole 64-bit words", () => {
    expect([1, 64, 65, 128, 129].map((n) => msixSizes({ tableSize: n }))).toEqual([
      { tableBytes: 16, pbaBytes: 8 },
      { tableBytes: 1024, pbaBytes: 8 },
      { tableBytes: 1040, pbaBytes: 16 },
      { tableBytes: 2048, pbaBytes: 16 },
      { tableBytes: 2064, pbaBytes: 24 },
    ]);
  });

  test("capability names", () => {
    expect(capabilityName(PciCapId.PM)).toBe("Power Management");
    expect(capabilityName(PciCapId.EXP)).toBe("PCI Express");
    expect(capabilityName(PciExtCapId.ATS, true)).toBe("Address Translation Services");
    expect(capabilityName(0x7e)).toBe("Unknown (0x7e)");
  });
});

// ------------------------------------------------- BARs and header variants

describe("BAR decoding", () => {
  test("io, prefetchable mem32, mem64 across two slots, unused, and a mem64 in the last slot", () => {
    const bytes = blankConfig();
    put32(bytes, 0x10, 0x0000c001);
    put32(bytes, 0x14, 0xfe000008);
    put32(bytes, 0x18, 0x8000000c);
    put32(bytes, 0x1c, 0x00000001);
    put32(bytes, 0x24, 0xd0000004);
    expect(decodeBars(bytes)).toEqual([
      { index: 0, kind: "io", prefetchable: false, address: 0xc000n, raw: 0xc001 },
      { index: 1, kind: "mem32", prefetchable: true, address: 0xfe000000n, raw: 0xfe000008 },
      { index: 2, kind: "mem64", prefetchable: true, address: 0x1_8000_0000n, raw: 0x8000000c },
      { index: 3, kind: "unused", prefetchable: false, address: 0n, upperHalfOf: 2, raw: 1 },
      { index: 4, kind: "unused", prefetchable: false, address: 0n, raw: 0 },
      { index: 5, kind: "mem64", prefetchable: false, address: 0xd0000000n, raw: 0xd0000004 },
    ]);
  });

  test("a PCI bridge header has two BARs and no subsystem ids; bit 7 of the header type is multi-function", () => {
    const bytes = blankConfig();
    bytes[0x0e] = 0x81;
    put32(bytes, 0x18, 0x00030201); // bus numbers, not a BAR
    expect(decodeBars(bytes)).toHaveLength(2);
    expect(parseConfigHeader(bytes)).toMatchObject({ headerType: 1, multiFunction: true, subsystemVendorId: undefined, subsystemId: undefined });
  });

  test("less than the 64-byte header is EINVAL with a hint", () => {
    for (const parse of [parseConfigHeader, standardCapabilities, extendedCapabilities, decodeBars]) {
      let error: unknown;
      try {
        parse(new Uint8Array(32));
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(VfioError);
      expect((error as VfioError).code).toBe("EINVAL");
      expect((error as VfioError).hint).toContain("256 bytes");
    }
  });
});
