/**
 * The vfio.h struct codecs, on buffers laid out byte by byte as the kernel
 * writes them (offsets from the C structs, pinned separately by abi.test.ts).
 */
import { describe, expect, test } from "bun:test";
import {
  decodeDeviceInfo, decodeGroupStatus, decodeHotResetInfo, decodeIommuInfo, decodeIrqInfo, decodeRegionInfo,
  encodeDmaMap, encodeDmaUnmap, encodeHotReset, encodeIrqSet, encodeRegionInfoRequest, walkCapChain,
} from "../../src/uapi/index.ts";

/** Little-endian byte writer for building kernel replies by hand. */
class Bytes {
  readonly buf: Uint8Array;
  readonly dv: DataView;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.dv = new DataView(this.buf.buffer);
  }
  u8(at: number, v: number) { this.dv.setUint8(at, v); return this; }
  u16(at: number, v: number) { this.dv.setUint16(at, v, true); return this; }
  u32(at: number, v: number) { this.dv.setUint32(at, v, true); return this; }
  u64(at: number, v: bigint) { this.dv.setBigUint64(at, v, true); return this; }
  capHeader(at: number, id: number, version: number, next: number) { return this.u16(at, id).u16(at + 2, version).u32(at + 4, next); }
}

describe("vfio_region_info", () => {
  test("QEMU nvme BAR0 as reported by Linux 6.12: READ|WRITE|MMAP|CAPS with MSIX_MAPPABLE", () => {
    // argsz 40, flags 0xf, index 0, cap_offset 32, size 0x4000, offset 0; cap {id 3, version 1, next 0}
    const b = new Bytes(40).u32(0, 40).u32(4, 0xf).u32(8, 0).u32(12, 32).u64(16, 0x4000n).u64(24, 0n).capHeader(32, 3, 1, 0);
    const info = decodeRegionInfo(b.buf);
    expect(info).toMatchObject({ index: 0, size: 0x4000, offset: 0n, readable: true, writable: true, mmappable: true, msixMappable: true, sparseAreas: undefined, capIds: [3] });
  });

  test("a sparse-mmap capability with three areas followed by a type capability", () => {
    // sparse cap at 32: header(8) nr_areas=3 reserved, areas at 48: (0,0x1000) (0x3000,0x2000) (0x10000,0x10000); next = 96
    const b = new Bytes(112).u32(0, 112).u32(4, 0xf).u32(8, 2).u32(12, 32).u64(16, 0x20000n).u64(24, 2n << 40n);
    b.capHeader(32, 1, 1, 96).u32(40, 3).u64(48, 0n).u64(56, 0x1000n).u64(64, 0x3000n).u64(72, 0x2000n).u64(80, 0x10000n).u64(88, 0x10000n);
    b.capHeader(96, 2, 1, 0).u32(104, 0x80008086).u32(108, 1);
    const info = decodeRegionInfo(b.buf);
    expect(info.index).toBe(2);
    expect(info.offset).toBe(2n * 2n ** 40n);
    expect(info.sparseAreas).toEqual([{ offset: 0, size: 0x1000 }, { offset: 0x3000, size: 0x2000 }, { offset: 0x10000, size: 0x10000 }]);
    expect(info.type).toEqual({ type: 0x80008086, subtype: 1 });
    expect(info.capIds).toEqual([1, 2]);
    expect(info.msixMappable).toBe(false);
  });

  test("a sparse-mmap capability with zero areas means nothing may be mapped", () => {
    const b = new Bytes(48).u32(0, 48).u32(4, 0xf).u32(12, 32).u64(16, 0x1000n).capHeader(32, 1, 1, 0).u32(40, 0);
    expect(decodeRegionInfo(b.buf).sparseAreas).toEqual([]);
  });

  test("caps are ignored when the CAPS flag is clear (pre-4.16 kernels)", () => {
    const b = new Bytes(40).u32(0, 40).u32(4, 0x7).u32(12, 32).u64(16, 0x4000n).capHeader(32, 3, 1, 0);
    expect(decodeRegionInfo(b.buf)).toMatchObject({ msixMappable: false, capIds: [] });
  });

  test("a cyclic or out-of-bounds chain terminates", () => {
    const cyclic = new Bytes(48).capHeader(32, 3, 1, 32);
    expect(walkCapChain(cyclic.buf, 32).map((c) => c.id)).toEqual([3]);
    const backwards = new Bytes(56).capHeader(32, 3, 1, 48).capHeader(48, 1, 1, 40);
    expect(walkCapChain(backwards.buf, 32).map((c) => c.id)).toEqual([3, 1]);
    expect(walkCapChain(new Bytes(40).buf, 36)).toEqual([]);
  });

  test("request encoding sets argsz and index", () => {
    const req = encodeRegionInfoRequest(7);
    expect([...req.slice(0, 12)]).toEqual([32, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0]);
    expect(encodeRegionInfoRequest(0, 96).byteLength).toBe(96);
  });
});

test("vfio_device_info: nvme under vfio-pci is RESET|PCI with 9 regions and 5 irqs", () => {
  const b = new Bytes(24).u32(0, 24).u32(4, 0x3).u32(8, 9).u32(12, 5).u32(16, 0);
  expect(decodeDeviceInfo(b.buf)).toEqual({ flags: 3, numRegions: 9, numIrqs: 5, canReset: true, isPci: true, capIds: [] });
});

test("vfio_group_status flags", () => {
  expect(decodeGroupStatus(new Bytes(8).u32(4, 3).buf)).toEqual({ flags: 3, viable: true, containerSet: true });
  expect(decodeGroupStatus(new Bytes(8).u32(4, 0).buf)).toEqual({ flags: 0, viable: false, containerSet: false });
});

test("vfio_irq_info: MSI-X index with EVENTFD|NORESIZE", () => {
  const b = new Bytes(16).u32(0, 16).u32(4, 0x9).u32(8, 2).u32(12, 65);
  expect(decodeIrqInfo(b.buf)).toEqual({ index: 2, count: 65, flags: 9, eventfd: true, maskable: false, automasked: false, noresize: true });
});

describe("vfio_irq_set encodings, byte for byte", () => {
  test("two eventfds on MSI-X: DATA_EVENTFD|ACTION_TRIGGER", () => {
    const buf = encodeIrqSet(2, 0, 2, 1 << 5, { kind: "eventfd", fds: [7, -1] });
    const want = new Bytes(28).u32(0, 28).u32(4, (1 << 2) | (1 << 5)).u32(8, 2).u32(12, 0).u32(16, 2);
    want.dv.setInt32(20, 7, true);
    want.dv.setInt32(24, -1, true);
    expect([...buf]).toEqual([...want.buf]);
  });
  test("software trigger of vector 3: DATA_NONE|ACTION_TRIGGER", () => {
    expect([...encodeIrqSet(2, 3, 1, 1 << 5, { kind: "none" })]).toEqual([...new Bytes(20).u32(0, 20).u32(4, 0x21).u32(8, 2).u32(12, 3).u32(16, 1).buf]);
  });
  test("mask INTx with DATA_BOOL", () => {
    expect([...encodeIrqSet(0, 0, 1, 1 << 3, { kind: "bool", values: [true] })]).toEqual([...new Bytes(21).u32(0, 21).u32(4, 0xa).u32(16, 1).u8(20, 1).buf]);
  });
  test("disable an index: DATA_NONE|ACTION_TRIGGER with count 0", () => {
    expect([...encodeIrqSet(1, 0, 0, 1 << 5, { kind: "none" })]).toEqual([...new Bytes(20).u32(0, 20).u32(4, 0x21).u32(8, 1).buf]);
  });
});

describe("type1 IOMMU", () => {
  test("info with IOVA ranges, DMA avail and migration caps", () => {
    // 24-byte header; IOVA range cap at 24 (2 ranges, to 72); DMA avail at 72 (to 88); migration at 88 (to 120)
    const c = new Bytes(128).u32(0, 128).u32(4, 3).u64(8, 0x40201000n).u32(16, 24);
    c.capHeader(24, 1, 1, 72).u32(32, 2).u64(40, 0n).u64(48, 0xfedfffffn).u64(56, 0xfef00000n).u64(64, 0xffffffffffffn);
    c.capHeader(72, 3, 1, 88).u32(80, 65535);
    c.capHeader(88, 2, 1, 0).u32(96, 1).u64(104, 0x1000n).u64(112, 0x10000000n);
    const info = decodeIommuInfo(c.buf);
    expect(info.pageSizes).toBe(0x40201000n);
    expect(info.iovaRanges).toEqual([{ start: 0n, end: 0xfedfffffn }, { start: 0xfef00000n, end: 0xffffffffffffn }]);
    expect(info.dmaAvailable).toBe(65535);
    expect(info.migration).toEqual({ flags: 1, pageSizes: 0x1000n, maxDirtyBitmapSize: 0x10000000n });
    expect(info.capIds).toEqual([1, 3, 2]);
  });

  test("dma map and unmap layouts", () => {
    const map = encodeDmaMap(0x7f0000000000, 0x100000n, 0x2000, 3);
    expect([...map]).toEqual([...new Bytes(32).u32(0, 32).u32(4, 3).u64(8, 0x7f0000000000n).u64(16, 0x100000n).u64(24, 0x2000n).buf]);
    const unmap = encodeDmaUnmap(0x100000n, 0x2000, 0);
    expect([...unmap]).toEqual([...new Bytes(24).u32(0, 24).u64(8, 0x100000n).u64(16, 0x2000n).buf]);
  });
});

test("hot reset info and request", () => {
  // two dependent devices: group 5 at 0000:00:04.0 (devfn 0x20), group 6 at 0001:02:1f.7 (devfn 0xff)
  const b = new Bytes(28).u32(0, 28).u32(8, 2).u32(12, 5).u16(16, 0).u8(18, 0).u8(19, 0x20).u32(20, 6).u16(24, 1).u8(26, 2).u8(27, 0xff);
  expect(decodeHotResetInfo(b.buf)).toEqual([{ groupId: 5, bdf: "0000:00:04.0" }, { groupId: 6, bdf: "0001:02:1f.7" }]);
  expect([...encodeHotReset([9, 10])]).toEqual([...new Bytes(20).u32(0, 20).u32(8, 2).u32(12, 9).u32(16, 10).buf]);
});
