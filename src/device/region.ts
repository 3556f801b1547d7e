/**
 * A device region (a BAR, config space, ROM, VGA, or a device-specific
 * region): exact-width reads and writes through pread/pwrite on the device
 * fd, bulk copies, and raw mmap of mappable ranges.
 */
import { VfioError } from "../errors.ts";
import { libc, PROT_READ, PROT_WRITE } from "../sys/libc.ts";
import { syscallError, type Hints } from "../sys/check.ts";
import { checkAccess, checkRange, MappedMemory, type Width } from "../sys/mmio.ts";
import type { OwnedFd } from "../sys/owned-fd.ts";
import type { RegionInfo } from "../uapi/structs.ts";
import { pageSize } from "../sys/memory.ts";

const RW_HINTS: Hints = {
  EINVAL: "The kernel refused this offset or width for the region (some ranges, like the MSI-X table, are not accessible through read/write).",
  EIO: "The device did not answer (it may be in reset, powered down, or its memory decoding is disabled: enable the command register's memory bit).",
  EFAULT: "The kernel could not copy the data (a library bug: please report it).",
};

/** A region of an open device. Obtained from `device.region(index)`. */
export class Region {
  readonly #fd: OwnedFd;
  readonly #maps = new Set<MappedMemory>();
  // One scratch buffer per region: exact-width pread/pwrite without allocating.
  readonly #scratch = new Uint8Array(8);
  readonly #u16 = new Uint16Array(this.#scratch.buffer, 0, 1);
  readonly #u32 = new Uint32Array(this.#scratch.buffer, 0, 1);
  readonly #u64 = new BigUint64Array(this.#scratch.buffer, 0, 1);
  /** What VFIO_DEVICE_GET_REGION_INFO said about this region. */
  readonly info: RegionInfo;
  /** A name for errors: `<device path>#region<index>`. */
  readonly path: string;

  /** @internal Created by Device.region(). */
  constructor(fd: OwnedFd, info: RegionInfo, path: string) {
    this.#fd = fd;
    this.info = info;
    this.path = path;
  }

  /** Region index (0-5 BARs, 6 ROM, 7 config, 8 VGA, 9+ device-specific). */
  get index(): number {
    return this.info.index;
  }

  /** Region size in bytes. */
  get size(): number {
    return this.info.size;
  }

  /** True once the device is closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  #pread(op: string, buf: Uint8Array, length: number, offset: number): void {
    const fd = this.#fd.get(op);
    if (!this.info.readable) throw notPermitted(op, "readable", this.path);
    const n = Number(libc.pread(fd, buf, length, this.info.offset + offset));
    if (n < 0) throw syscallError(op, this.path, RW_HINTS);
    if (n !== length) throw shortTransfer(op, n, length, offset, this.path);
  }

  #pwrite(op: string, buf: Uint8Array, length: number, offset: number): void {
    const fd = this.#fd.get(op);
    if (!this.info.writable) throw notPermitted(op, "writable", this.path);
    const n = Number(libc.pwrite(fd, buf, length, this.info.offset + offset));
    if (n < 0) throw syscallError(op, this.path, RW_HINTS);
    if (n !== length) throw shortTransfer(op, n, length, offset, this.path);
  }

  #readWidth(op: string, offset: number, width: Width): void {
    checkAccess(op, offset, width, this.size, this.path);
    this.#pread(op, this.#scratch, width, offset);
  }

  #writeWidth(op: string, offset: number, width: Width): void {
    checkAccess(op, offset, width, this.size, this.path);
    this.#pwrite(op, this.#scratch, width, offset);
  }

  /** One 8-bit read. Internally this calls pread(2) on the device fd. */
  read8(offset: number): number {
    this.#readWidth("read8", offset, 1);
    return this.#scratch[0]!;
  }
  /** One 16-bit read (2-byte aligned). Internally this calls pread(2). */
  read16(offset: number): number {
    this.#readWidth("read16", offset, 2);
    return this.#u16[0]!;
  }
  /** One 32-bit read (4-byte aligned). Internally this calls pread(2). */
  read32(offset: number): number {
    this.#readWidth("read32", offset, 4);
    return this.#u32[0]!;
  }
  /** One 64-bit read (8-byte aligned). Internally this calls pread(2). */
  read64(offset: number): bigint {
    this.#readWidth("read64", offset, 8);
    return this.#u64[0]!;
  }
  /** One 8-bit write. Internally this calls pwrite(2) on the device fd. */
  write8(offset: number, value: number): void {
    this.#scratch[0] = value;
    this.#writeWidth("write8", offset, 1);
  }
  /** One 16-bit write (2-byte aligned). Internally this calls pwrite(2). */
  write16(offset: number, value: number): void {
    this.#u16[0] = value;
    this.#writeWidth("write16", offset, 2);
  }
  /** One 32-bit write (4-byte aligned). Internally this calls pwrite(2). */
  write32(offset: number, value: number): void {
    this.#u32[0] = value;
    this.#writeWidth("write32", offset, 4);
  }
  /** One 64-bit write (8-byte aligned). Internally this calls pwrite(2). */
  write64(offset: number, value: bigint): void {
    this.#u64[0] = value;
    this.#writeWidth("write64", offset, 8);
  }

  /**
   * Reads `length` bytes at `offset` in one pread(2); the kernel splits it
   * into the widest aligned accesses it can.
   */
  read(offset: number, length: number): Uint8Array {
    checkRange("read", offset, length, this.size, this.path);
    const out = new Uint8Array(length);
    if (length > 0) this.#pread("read", out, length, offset);
    return out;
  }

  /** Writes `bytes` at `offset` in one pwrite(2). */
  write(offset: number, bytes: Uint8Array): void {
    checkRange("write", offset, bytes.byteLength, this.size, this.path);
    if (bytes.byteLength > 0) this.#pwrite("write", bytes, bytes.byteLength, offset);
  }

  /**
   * mmap(2)s `[offset, offset+length)` of the region (default: all of it) and
   * returns a register view (read8..64 / write8..64). The range must be
   * page-aligned and, with sparse-mmap regions, inside an area the kernel
   * allows. The mapping is released by `unmap()` or when the device closes.
   * For BARs prefer `device.bar(n)`, which applies the mmap plan.
   */
  map(range: { offset?: number; length?: number; readOnly?: boolean } = {}): MappedMemory {
    const op = "mmap region";
    const fd = this.#fd.get(op);
    if (!this.info.mmappable) {
      throw new VfioError({ op, code: "EINVAL", errno: 22, path: this.path, detail: `region ${this.index} has no VFIO_REGION_INFO_FLAG_MMAP`, hint: "Use read/write (pread/pwrite) for this region, or device.bar(n) which picks for you." });
    }
    const offset = range.offset ?? 0;
    const mappable = Math.ceil(this.size / pageSize()) * pageSize(); // the kernel maps a partial last page whole
    const length = range.length ?? mappable - offset;
    checkRange(op, offset, length, mappable, this.path);
    for (const m of this.#maps) if (m.closed) this.#maps.delete(m);
    const prot = range.readOnly || !this.info.writable ? PROT_READ : PROT_READ | PROT_WRITE;
    const mapping = MappedMemory.mapFile(fd, this.info.offset + offset, length, {
      prot, path: this.path, op,
      hints: { EINVAL: "The range must be page-aligned and inside an mmap-able area of the region (see region.info.sparseAreas)." },
    });
    this.#maps.add(mapping);
    return mapping;
  }

  /** Unmaps every mapping made by `map()` (done for you when the device closes). */
  unmapAll(): void {
    for (const m of this.#maps) m.unmap();
    this.#maps.clear();
  }
}

function notPermitted(op: string, what: string, path: string): VfioError {
  return new VfioError({ op, code: "EACCES", errno: 13, path, detail: `the region is not ${what}`, hint: `The kernel marks this region as not ${what}; it cannot be accessed this way.` });
}

function shortTransfer(op: string, done: number, wanted: number, offset: number, path: string): VfioError {
  return new VfioError({ op, code: "EIO", errno: 5, path, detail: `transferred ${done} of ${wanted} bytes at 0x${offset.toString(16)}`, hint: "Part of the range is not backed by the device (for example the MSI-X table): access it in smaller pieces." });
}
