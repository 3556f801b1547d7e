/**
 * The BAR accessor: one register interface per BAR that follows the mmap
 * plan. Each "mmap" range of the plan is mapped once; every access goes to
 * the mapping when it falls inside one and to pread/pwrite otherwise, so
 * callers never care which. Writes into the MSI-X table and PBA are refused
 * unless the caller opts out (vectors are configured with SET_IRQS); where
 * the plan traps them even the opt-out cannot help (vfio-pci drops writes
 * to the table made through the device fd), so they are refused there too.
 * Mapped accesses are gated by the device: while memory decoding is off
 * they fail with EIO instead of raising SIGBUS.
 */
import { VfioError } from "../support/errors.ts";
import { hex } from "../support/format.ts";
import { checkAccess, checkRange, type MappedMemory } from "../sys/mmio.ts";
import type { GuardedRange, MmapPlan } from "../mmap-plan/index.ts";
import type { Region } from "./region.ts";

/** A mapped range of the BAR: [start, end) of the BAR backed by `memory` (which starts at `start`). */
interface MappedRange {
  start: number;
  end: number;
  memory: MappedMemory;
}

/** Options of `PciDevice.bar()`. */
export interface BarAccessOptions {
  /** Allow writes into the MSI-X table and PBA (default false: they throw). */
  allowMsixWrites?: boolean;
}

/**
 * A BAR register accessor built from its {@link MmapPlan}. Obtained from
 * `device.bar(n)`; released when the device closes or by `close()`.
 */
export class Bar implements Disposable {
  readonly #region: Region;
  readonly #onClose: () => void;
  readonly #maps: MappedRange[];
  readonly #guards: GuardedRange[];
  #closed = false;
  /** The decision this accessor follows; `plan.explain()` says why. */
  readonly plan: MmapPlan;

  /** @internal Built by PciDevice.bar(): maps every "mmap" range of the plan. */
  constructor(region: Region, plan: MmapPlan, options: BarAccessOptions, onClose: () => void) {
    this.#region = region;
    this.#onClose = onClose;
    this.plan = plan;
    this.#guards = options.allowMsixWrites ? [] : plan.guarded;
    this.#maps = [];
    try {
      for (const range of plan.ranges) {
        if (range.access !== "mmap") continue;
        // The kernel maps whole pages; a BAR end that is not page-aligned is mapped to the page end.
        const length = Math.ceil((range.end - range.start) / plan.pageSize) * plan.pageSize;
        // The plan already weighed MSI isolation for these pages (rule 2 or policy "force").
        this.#maps.push({ start: range.start, end: range.end, memory: region.map({ offset: range.start, length, unsafeMapMsixTable: true }) });
      }
    } catch (err) {
      for (const m of this.#maps) m.memory.close();
      throw err;
    }
  }

  /** BAR index. */
  get index(): number {
    return this.plan.bar;
  }

  /** BAR size in bytes. */
  get size(): number {
    return this.plan.size;
  }

  /** True once closed (or its device closed). */
  get closed(): boolean {
    return this.#closed || this.#region.closed;
  }

  /** The mapped range holding [offset, offset+width), or undefined when that access is trapped. */
  #mapped(op: string, offset: number, width: number): MappedRange | undefined {
    this.#alive(op);
    checkAccess(op, offset, width, this.plan.size, this.#region.path);
    for (const m of this.#maps) if (offset >= m.start && offset + width <= m.end) return m;
    return undefined;
  }

  #alive(op: string): void {
    if (this.#closed) throw new VfioError({ op, code: "ECLOSED", errno: 9, path: this.#region.path, detail: "the BAR accessor is closed", hint: "Get a new accessor with device.bar(n)." });
    if (this.#region.closed) throw new VfioError({ op, code: "ECLOSED", errno: 9, path: this.#region.path, detail: "the device is closed", hint: "Open the device again; its BAR accessors close with it." });
  }

  #guard(op: string, offset: number, length: number): void {
    for (const g of this.#guards) {
      if (offset < g.end && offset + length > g.start) {
        throw new VfioError({
          op, code: "EPERM", errno: 1, path: this.#region.path,
          detail: `${hex(offset)}+${length} overlaps the ${g.what === "msix-table" ? "MSI-X table" : "MSI-X PBA"} (${hex(g.start)}-${hex(g.end)})`,
          hint: "Configure vectors with device.msix (VFIO_DEVICE_SET_IRQS); pass { allowMsixWrites: true } to device.bar() to write there anyway.",
        });
      }
    }
  }

  /** One 8-bit read (a load from the mapping, or pread). */
  read8(offset: number): number {
    const m = this.#mapped("read8", offset, 1);
    return m ? m.memory.read8(offset - m.start) : this.#region.read8(offset);
  }
  /** One 16-bit read (a load from the mapping, or pread). */
  read16(offset: number): number {
    const m = this.#mapped("read16", offset, 2);
    return m ? m.memory.read16(offset - m.start) : this.#region.read16(offset);
  }
  /** One 32-bit read (`readl`: a load from the mapping then a read barrier, or pread). */
  read32(offset: number): number {
    const m = this.#mapped("read32", offset, 4);
    return m ? m.memory.read32(offset - m.start) : this.#region.read32(offset);
  }
  /** One 64-bit read (a load from the mapping, or pread). */
  read64(offset: number): bigint {
    const m = this.#mapped("read64", offset, 8);
    return m ? m.memory.read64(offset - m.start) : this.#region.read64(offset);
  }
  /** One 8-bit write (a store to the mapping, or pwrite). */
  write8(offset: number, value: number): void {
    const m = this.#mapped("write8", offset, 1);
    this.#guard("write8", offset, 1);
    if (m) m.memory.write8(offset - m.start, value);
    else this.#region.write8(offset, value);
  }
  /** One 16-bit write (a store to the mapping, or pwrite). */
  write16(offset: number, value: number): void {
    const m = this.#mapped("write16", offset, 2);
    this.#guard("write16", offset, 2);
    if (m) m.memory.write16(offset - m.start, value);
    else this.#region.write16(offset, value);
  }
  /** One 32-bit write (`writel`: a write barrier then a store to the mapping, or pwrite), so DMA memory written before it is visible to the device first. */
  write32(offset: number, value: number): void {
    const m = this.#mapped("write32", offset, 4);
    this.#guard("write32", offset, 4);
    if (m) m.memory.write32(offset - m.start, value);
    else this.#region.write32(offset, value);
  }
  /** One 64-bit write (a store to the mapping, or pwrite). */
  write64(offset: number, value: bigint): void {
    const m = this.#mapped("write64", offset, 8);
    this.#guard("write64", offset, 8);
    if (m) m.memory.write64(offset - m.start, value);
    else this.#region.write64(offset, value);
  }

  /** One 8-bit write with no barrier (a store to the mapping, or pwrite): batch, then `wmb()` or an ordered write. */
  write8Relaxed(offset: number, value: number): void {
    const m = this.#mapped("write8Relaxed", offset, 1);
    this.#guard("write8Relaxed", offset, 1);
    if (m) m.memory.write8Relaxed(offset - m.start, value);
    else this.#region.write8(offset, value);
  }
  /** One 16-bit write with no barrier. */
  write16Relaxed(offset: number, value: number): void {
    const m = this.#mapped("write16Relaxed", offset, 2);
    this.#guard("write16Relaxed", offset, 2);
    if (m) m.memory.write16Relaxed(offset - m.start, value);
    else this.#region.write16(offset, value);
  }
  /** One 32-bit write with no barrier (`writel_relaxed`). */
  write32Relaxed(offset: number, value: number): void {
    const m = this.#mapped("write32Relaxed", offset, 4);
    this.#guard("write32Relaxed", offset, 4);
    if (m) m.memory.write32Relaxed(offset - m.start, value);
    else this.#region.write32(offset, value);
  }
  /** One 64-bit write with no barrier. */
  write64Relaxed(offset: number, value: bigint): void {
    const m = this.#mapped("write64Relaxed", offset, 8);
    this.#guard("write64Relaxed", offset, 8);
    if (m) m.memory.write64Relaxed(offset - m.start, value);
    else this.#region.write64(offset, value);
  }

  /**
   * Copies `length` bytes out of the BAR, piece by piece along the plan:
   * mapped pieces are copied from the mapping (memcpy: fine for device
   * memory, not for registers with read side effects), trapped ones are read
   * with one pread each.
   */
  read(offset: number, length: number): Uint8Array {
    this.#alive("read");
    checkRange("read", offset, length, this.plan.size, this.#region.path);
    const out = new Uint8Array(length);
    this.#pieces(offset, length, (start, end, m) => {
      out.set(m ? m.memory.read(start - m.start, end - start) : this.#region.read(start, end - start), start - offset);
    });
    return out;
  }

  /** Copies `bytes` into the BAR at `offset`, along the plan like {@link read}. Refused over the MSI-X table/PBA. */
  write(offset: number, bytes: Uint8Array): void {
    this.#alive("write");
    if (!(bytes instanceof Uint8Array)) throw new VfioError({ op: "write", code: "EINVAL", errno: 22, path: this.#region.path, detail: "bytes is not a Uint8Array", hint: "Pass the data as a Uint8Array." });
    checkRange("write", offset, bytes.byteLength, this.plan.size, this.#region.path);
    this.#guard("write", offset, bytes.byteLength);
    this.#pieces(offset, bytes.byteLength, (start, end, m) => {
      const piece = bytes.subarray(start - offset, end - offset);
      if (m) m.memory.write(start - m.start, piece);
      else this.#region.write(start, piece);
    });
  }

  /** Splits [offset, offset+length) at plan range boundaries and calls `visit` for each piece. */
  #pieces(offset: number, length: number, visit: (start: number, end: number, m: MappedRange | undefined) => void): void {
    const end = offset + length;
    for (const range of this.plan.ranges) {
      const s = Math.max(offset, range.start);
      const e = Math.min(end, range.end);
      if (s >= e) continue;
      visit(s, e, this.#maps.find((m) => s >= m.start && e <= m.end));
    }
  }

  /** Unmaps the BAR's mappings; later accesses throw. Idempotent; done for you when the device closes. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    let first: unknown;
    for (const m of this.#maps.splice(0)) {
      try {
        m.memory.close();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
