/**
 * A device region (a BAR, config space, ROM, VGA, or a device-specific
 * region): exact-width reads and writes through pread/pwrite on the device
 * fd, bulk copies, and raw mmap of mappable ranges.
 *
 * What the owning device decides for a region ({@link RegionRules}):
 * - the access gate of its mappings (no SIGBUS while memory decoding is off);
 * - where the MSI-X table and PBA are, and whether MSIs are isolated: a
 *   write there through pwrite is refused (vfio-pci drops it silently), and
 *   a raw mapping of their pages without isolation needs the loudly named
 *   `unsafeMapMsixTable` opt-in;
 * - what to do after a write (config space: the command register may have
 *   changed, so the gate must look again).
 */
import { VfioError } from "../support/errors.ts";
import { hex } from "../support/format.ts";
import { optionsArg, registerValue, registerValue64 } from "../support/args.ts";
import { PROT_READ, PROT_WRITE } from "../sys/constants.ts";
import { syscallError, type Hints } from "../sys/check.ts";
import { checkAccess, checkRange, MappedMemory, type AccessGate, type Width } from "../sys/mmio.ts";
import type { OwnedFd } from "../sys/owned-fd.ts";
import { pageSize } from "../sys/memory.ts";
import { sys } from "../sys/runtime.ts";
import type { RegionInfo } from "../uapi/structs.ts";

const RW_HINTS: Hints = {
  EINVAL: "The kernel refused this offset or width for the region (some ranges, like the MSI-X table, are not accessible through read/write).",
  EIO: "The device did not answer: its memory decoding is off (call device.enableMemory()), or it is in reset or powered down.",
  EFAULT: "The kernel could not copy the data (a library bug: please report it).",
};

/** A byte range of a region that needs care: the MSI-X table or PBA. */
export interface MsixSpan {
  start: number;
  end: number;
  what: "msix-table" | "msix-pba";
}

/** What the owning device decides for one region. */
export interface RegionRules {
  /** Consulted before every access to a mapping of this region. */
  gate?: AccessGate;
  /** The MSI-X table/PBA inside this region (empty when none). */
  msix?: readonly MsixSpan[];
  /** True when MSIs are isolated (attested or observed): mapping the table's pages is then safe. */
  msiIsolated?: () => boolean;
  /** Called after every successful write (config space: invalidates the gate). */
  afterWrite?: (offset: number, length: number) => void;
}

/** Options of {@link Region.map}. */
export interface RegionMapOptions {
  /** Start of the mapping in the region (page-aligned; default 0). */
  offset?: number;
  /** Length (default: to the page-rounded end of the region). */
  length?: number;
  /** Map read-only. */
  readOnly?: boolean;
  /**
   * Map pages holding the MSI-X table or PBA although MSIs are not isolated
   * on this host. UNSAFE: whoever writes the table can then make the device
   * send any interrupt to any CPU. Default false: such a mapping is refused.
   */
  unsafeMapMsixTable?: boolean;
}

/** A region of an open device. Obtained from `device.region(index)`. */
export class Region {
  readonly #fd: OwnedFd;
  readonly #rules: RegionRules;
  readonly #base: number | bigint;
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
  constructor(fd: OwnedFd, info: RegionInfo, path: string, rules: RegionRules = {}) {
    this.#fd = fd;
    this.info = info;
    this.path = path;
    this.#rules = rules;
    // Keep the fd offset a number when exact (the fast path); bigint past 2^53.
    this.#base = info.offset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(info.offset) : info.offset;
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

  #at(offset: number): number | bigint {
    return typeof this.#base === "number" ? this.#base + offset : this.#base + BigInt(offset);
  }

  #pread(op: string, buf: Uint8Array, length: number, offset: number): void {
    const fd = this.#fd.get(op);
    if (!this.info.readable) throw notPermitted(op, "readable", this.path);
    const n = sys().pread(fd, buf, length, this.#at(offset));
    if (n < 0) throw syscallError(op, this.path, RW_HINTS, -n);
    if (n !== length) throw shortTransfer(op, n, length, offset, this.path);
  }

  #pwrite(op: string, buf: Uint8Array, length: number, offset: number): void {
    const fd = this.#fd.get(op);
    if (!this.info.writable) throw notPermitted(op, "writable", this.path);
    this.#refuseMsixWrite(op, offset, length);
    const n = sys().pwrite(fd, buf, length, this.#at(offset));
    if (n < 0) throw syscallError(op, this.path, RW_HINTS, -n);
    if (n !== length) throw shortTransfer(op, n, length, offset, this.path);
    this.#rules.afterWrite?.(offset, length);
  }

  /** vfio-pci drops pwrite()s to the MSI-X table and PBA without an error: refuse them instead. */
  #refuseMsixWrite(op: string, offset: number, length: number): void {
    for (const span of this.#rules.msix ?? []) {
      if (offset < span.end && offset + length > span.start) {
        throw new VfioError({
          op, code: "EPERM", errno: 1, path: this.path,
          detail: `${hex(offset)}+${length} overlaps the ${spanName(span)} (${hex(span.start)}-${hex(span.end)}), where vfio-pci drops writes made through the device fd`,
          hint: "Configure vectors with device.msix (VFIO_DEVICE_SET_IRQS); the table is only reachable through a mapping, with device.bar(n, { allowMsixWrites: true }) on a host that isolates MSIs.",
        });
      }
    }
  }

  #readWidth(op: string, offset: unknown, width: Width): void {
    checkAccess(op, offset, width, this.size, this.path);
    this.#pread(op, this.#scratch, width, offset);
  }

  #writeWidth(op: string, offset: unknown, width: Width): void {
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
    this.#scratch[0] = registerValue("write8", value, 1, this.path);
    this.#writeWidth("write8", offset, 1);
  }
  /** One 16-bit write (2-byte aligned). Internally this calls pwrite(2). */
  write16(offset: number, value: number): void {
    this.#u16[0] = registerValue("write16", value, 2, this.path);
    this.#writeWidth("write16", offset, 2);
  }
  /** One 32-bit write (4-byte aligned). Internally this calls pwrite(2). */
  write32(offset: number, value: number): void {
    this.#u32[0] = registerValue("write32", value, 4, this.path);
    this.#writeWidth("write32", offset, 4);
  }
  /** One 64-bit write (8-byte aligned). Internally this calls pwrite(2). */
  write64(offset: number, value: bigint): void {
    this.#u64[0] = registerValue64("write64", value, this.path);
    this.#writeWidth("write64", offset, 8);
  }

  /**
   * Reads `length` bytes at `offset` in one pread(2); the kernel splits it
   * into the widest aligned accesses it can.
   */
  read(offset: number, length: number): Uint8Array {
    checkRange("read", offset, length, this.size, this.path);
    const out = new Uint8Array(length as number);
    if (out.length > 0) this.#pread("read", out, out.length, offset);
    return out;
  }

  /** Writes `bytes` at `offset` in one pwrite(2). Refused over the MSI-X table/PBA (the kernel would drop it). */
  write(offset: number, bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw notBytes("write", this.path);
    checkRange("write", offset, bytes.byteLength, this.size, this.path);
    if (bytes.byteLength > 0) this.#pwrite("write", bytes, bytes.byteLength, offset);
  }

  /**
   * mmap(2)s `[offset, offset+length)` of the region (default: all of it) and
   * returns a register view (read8..64 / write8..64). The range must be
   * page-aligned and, with sparse-mmap regions, inside an area the kernel
   * allows. Pages holding the MSI-X table or PBA are refused unless MSIs are
   * isolated or `unsafeMapMsixTable` is set. Every access checks that the
   * device's memory is reachable (no SIGBUS). Released by `close()` or when
   * the device closes. For BARs prefer `device.bar(n)`, which follows the mmap plan.
   */
  map(options: RegionMapOptions = {}): MappedMemory {
    const op = "mmap region";
    const range = optionsArg(op, options, this.path);
    const fd = this.#fd.get(op);
    if (!this.info.mmappable) {
      throw new VfioError({ op, code: "EINVAL", errno: 22, path: this.path, detail: `region ${this.index} has no VFIO_REGION_INFO_FLAG_MMAP`, hint: "Use read/write (pread/pwrite) for this region, or device.bar(n) which picks for you." });
    }
    const page = pageSize();
    const mappable = Math.ceil(this.size / page) * page; // the kernel maps a partial last page whole
    const offset = range.offset ?? 0;
    const length = range.length ?? mappable - offset;
    checkRange(op, offset, length, mappable, this.path);
    if (offset % page !== 0 || length % page !== 0 || length === 0) {
      throw new VfioError({ op, code: "EINVAL", errno: 22, path: this.path, detail: `range ${hex(offset)}+${hex(length)} is not a whole number of ${page}-byte pages`, hint: `Map page-aligned ranges (the host page size is ${page} bytes).` });
    }
    this.#refuseUnsafeMap(op, offset, length, page, range.unsafeMapMsixTable === true);
    for (const m of this.#maps) if (m.closed) this.#maps.delete(m);
    const prot = range.readOnly || !this.info.writable ? PROT_READ : PROT_READ | PROT_WRITE;
    const mapping = MappedMemory.mapFile(fd, this.#at(offset), length, {
      prot, path: this.path, op, gate: this.#rules.gate,
      hints: { EINVAL: "The range must be page-aligned and inside an mmap-able area of the region (see region.info.sparseAreas)." },
    });
    this.#maps.add(mapping);
    return mapping;
  }

  /** A mapping that reaches the MSI-X table without isolation is the 2016 attack: refuse it unless opted in. */
  #refuseUnsafeMap(op: string, offset: number, length: number, page: number, optedIn: boolean): void {
    if (optedIn || this.#rules.msiIsolated?.() === true) return;
    for (const span of this.#rules.msix ?? []) {
      const first = Math.floor(span.start / page) * page;
      const last = Math.ceil(span.end / page) * page;
      if (offset < last && offset + length > first) {
        throw new VfioError({
          op, code: "EPERM", errno: 1, path: this.path,
          detail: `${hex(offset)}+${hex(length)} covers the page(s) ${hex(first)}-${hex(last)} holding the ${spanName(span)}, and this host does not isolate MSIs`,
          hint: "Without interrupt remapping a write there can make the device send any interrupt to any CPU. Use device.bar(n), which traps those pages, or pass { unsafeMapMsixTable: true } if you accept that risk.",
        });
      }
    }
  }

  /** @internal Unmaps every mapping made by `map()` (the device does this when it closes). */
  unmapAll(): void {
    const maps = [...this.#maps];
    this.#maps.clear();
    let first: unknown;
    for (const m of maps) {
      try {
        m.close();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}

function spanName(span: MsixSpan): string {
  return span.what === "msix-table" ? "MSI-X table" : "MSI-X PBA";
}

function notPermitted(op: string, what: string, path: string): VfioError {
  return new VfioError({ op, code: "EACCES", errno: 13, path, detail: `the region is not ${what}`, hint: `The kernel marks this region as not ${what}; it cannot be accessed this way.` });
}

function notBytes(op: string, path: string): VfioError {
  return new VfioError({ op, code: "EINVAL", errno: 22, path, detail: "bytes is not a Uint8Array", hint: "Pass the data as a Uint8Array." });
}

function shortTransfer(op: string, done: number, wanted: number, offset: number, path: string): VfioError {
  return new VfioError({ op, code: "EIO", errno: 5, path, detail: `transferred ${done} of ${wanted} bytes at ${hex(offset)}`, hint: "Part of the range is not backed by the device (for example the MSI-X table): access it in smaller pieces." });
}
