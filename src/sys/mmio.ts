/**
 * Mapped memory: an mmap(2) owner with exact-width loads and stores (see
 * {@link MemoryView}), bounds and use-after-unmap checks, and for device
 * memory an {@link AccessGate} consulted before every access: vfio-pci
 * revokes BAR mappings while memory decoding is off or a reset runs, and
 * touching one then raises SIGBUS, which would kill the process.
 *
 * Unmapping detaches every view first, so a stale typed array reads
 * `undefined` instead of touching unmapped memory. A mapping that is
 * garbage-collected unreleased is unmapped by a FinalizationRegistry keyed
 * on its buffer: as long as any view of the memory is reachable, so is the
 * buffer, so the backstop never unmaps memory someone can still touch.
 */
import { VfioError, invalidArgument, useAfterClose } from "../support/errors.ts";
import { hex } from "../support/format.ts";
import { registerValue, registerValue64 } from "../support/args.ts";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "./constants.ts";
import { check, syscallError, type Hints } from "./check.ts";
import { sys } from "./runtime.ts";
import type { MemoryView, Pointer } from "./types.ts";

/** Access widths in bytes. */
export type Width = 1 | 2 | 4 | 8;

/**
 * Says whether device memory may be touched right now. The device owns it
 * (it knows the command register and resets); mappings and BAR accessors
 * only consult it.
 */
export interface AccessGate {
  /** True when a load or store cannot fault (memory decoding on, no reset running). */
  usable(): boolean;
  /** The VfioError (EIO) for an access attempted while not usable. */
  refusal(op: string): VfioError;
}

/**
 * Checks that `[offset, offset+width)` lies inside `length` and is naturally
 * aligned; throws a VfioError naming `op` and `path` otherwise.
 */
export function checkAccess(op: string, offset: unknown, width: number, length: number, path?: string): asserts offset is number {
  if (typeof offset !== "number" || !Number.isInteger(offset) || offset < 0 || offset + width > length) {
    throw invalidArgument(op, `offset ${hex(offset)} (+${width}) is outside 0x0-${hex(length)}`,
      "Use an offset inside the region; region.size gives its length.", path);
  }
  if (offset % width !== 0) {
    throw invalidArgument(op, `offset ${hex(offset)} is not aligned to ${width} bytes`,
      `Device registers are accessed at natural alignment: use a multiple of ${width}.`, path);
  }
}

/** Checks that `[offset, offset+length)` lies inside `size` (bulk copies: any alignment). */
export function checkRange(op: string, offset: unknown, length: unknown, size: number, path?: string): asserts offset is number {
  if (typeof offset !== "number" || typeof length !== "number" || !Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw invalidArgument(op, `range ${hex(offset)}+${hex(length)} is outside 0x0-${hex(size)}`, "Keep offset and length inside the size.", path);
  }
}

const unmapLeaked = new FinalizationRegistry<{ pointer: Pointer; length: number }>(({ pointer, length }) => {
  sys().munmap(pointer, length);
});

/** Options of the MappedMemory factories. */
export interface MapOptions {
  prot?: number;
  path?: string;
  op?: string;
  hints?: Hints;
  /** Device memory: consulted before every access. */
  gate?: AccessGate;
  /** Leave the GC backstop to the caller (DmaBuffer must unmap the IOMMU first). */
  noBackstop?: boolean;
  /**
   * How accesses are ordered: `"device"` (registers: `readl`/`writel`,
   * the default when a gate is given), `"dma"` (memory a device writes:
   * loads are `load + dma_rmb`, stores plain), `"none"` (plain loads and stores).
   */
  ordering?: "device" | "dma" | "none";
}

/** A live mmap(2) of `length` bytes, released by `close()` (or `using`). */
export class MappedMemory {
  readonly #pointer: Pointer;
  readonly #view: MemoryView;
  readonly #gate: AccessGate | undefined;
  readonly #orderedLoads: boolean;
  readonly #orderedStores: boolean;
  #live = true;
  /** Length of the mapping in bytes. */
  readonly length: number;
  /** Path named in errors (the device this memory belongs to, if any). */
  readonly path: string | undefined;

  private constructor(pointer: Pointer, length: number, options: MapOptions) {
    this.#pointer = pointer;
    this.length = length;
    this.path = options.path;
    this.#gate = options.gate;
    const ordering = options.ordering ?? (options.gate ? "device" : "none");
    this.#orderedLoads = ordering !== "none";
    this.#orderedStores = ordering === "device";
    this.#view = sys().view(pointer, length);
    if (!options.noBackstop) unmapLeaked.register(this.#view.bytes.buffer, { pointer, length }, this);
  }

  /**
   * mmap(2) `length` bytes of `fd` at `offset` (MAP_SHARED, read/write unless
   * `prot` says otherwise).
   */
  static mapFile(fd: number, offset: number | bigint, length: number, options: MapOptions = {}): MappedMemory {
    const got = sys().mmap(length, options.prot ?? (PROT_READ | PROT_WRITE), MAP_SHARED, fd, offset);
    if (got.pointer === undefined) throw syscallError(options.op ?? "mmap", options.path, options.hints ?? {}, got.errno);
    return new MappedMemory(got.pointer, length, options);
  }

  /** mmap(2) anonymous memory (`flags` must include MAP_ANONYMOUS and MAP_SHARED or MAP_PRIVATE). */
  static mapAnonymous(length: number, flags: number, options: MapOptions = {}): MappedMemory {
    const got = sys().mmap(length, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (got.pointer === undefined) throw syscallError(options.op ?? "mmap", options.path, options.hints ?? {}, got.errno);
    return new MappedMemory(got.pointer, length, options);
  }

  /** True once unmapped. */
  get closed(): boolean {
    return !this.#live;
  }

  /** The mapping's address as the kernel sees it (VFIO_IOMMU_MAP_DMA's vaddr). Throws after unmap. */
  get address(): bigint {
    this.#alive("address");
    return sys().address(this.#pointer);
  }

  /** @internal The pointer, for the GC backstop of an owner that unmaps in its own order. */
  get pointer(): Pointer {
    return this.#pointer;
  }

  /**
   * A byte view of the whole mapping, for RAM (DMA buffers). Device memory
   * has none: a kept view would outlive the gate's checks, so use
   * read()/write() copies there. Detached (length 0) after unmap.
   */
  get bytes(): Uint8Array {
    this.#alive("bytes");
    if (this.#gate) {
      throw new VfioError({ op: "bytes", code: "EPERM", errno: 1, path: this.path, detail: "device memory has no raw byte view", hint: "Use read(offset, length) / write(offset, bytes), which check that the device's memory is reachable." });
    }
    return this.#view.bytes;
  }

  #alive(op: string): void {
    if (!this.#live) throw useAfterClose(op, "mapping", this.path);
  }

  #enter(op: string, offset: unknown, width: number): asserts offset is number {
    this.#alive(op);
    checkAccess(op, offset, width, this.length, this.path);
    if (this.#gate && !this.#gate.usable()) throw this.#gate.refusal(op);
  }

  /** One 8-bit load (device memory: then a read barrier, like `readb`). */
  read8(offset: number): number {
    this.#enter("read8", offset, 1);
    return this.#orderedLoads ? this.#view.ordered.load8(offset) : this.#view.load8(offset);
  }
  /** One 16-bit load. */
  read16(offset: number): number {
    this.#enter("read16", offset, 2);
    return this.#orderedLoads ? this.#view.ordered.load16(offset) : this.#view.load16(offset);
  }
  /** One 32-bit load (device memory: `readl`, one load then a read barrier; DMA memory: the same, so later reads of what the device wrote are not satisfied early). */
  read32(offset: number): number {
    this.#enter("read32", offset, 4);
    return this.#orderedLoads ? this.#view.ordered.load32(offset) : this.#view.load32(offset);
  }
  /** One 64-bit load. */
  read64(offset: number): bigint {
    this.#enter("read64", offset, 8);
    return this.#orderedLoads ? this.#view.ordered.load64(offset) : this.#view.load64(offset);
  }
  /** One 8-bit store. */
  write8(offset: number, value: number): void {
    const v = registerValue("write8", value, 1, this.path);
    this.#enter("write8", offset, 1);
    if (this.#orderedStores) this.#view.ordered.store8(offset, v);
    else this.#view.store8(offset, v);
  }
  /** One 16-bit store. */
  write16(offset: number, value: number): void {
    const v = registerValue("write16", value, 2, this.path);
    this.#enter("write16", offset, 2);
    if (this.#orderedStores) this.#view.ordered.store16(offset, v);
    else this.#view.store16(offset, v);
  }
  /** One 32-bit store (device memory: `writel`, a write barrier then one store, so DMA memory written before is visible to the device first). */
  write32(offset: number, value: number): void {
    const v = registerValue("write32", value, 4, this.path);
    this.#enter("write32", offset, 4);
    if (this.#orderedStores) this.#view.ordered.store32(offset, v);
    else this.#view.store32(offset, v);
  }
  /** One 64-bit store. */
  write64(offset: number, value: bigint): void {
    const v = registerValue64("write64", value, this.path);
    this.#enter("write64", offset, 8);
    if (this.#orderedStores) this.#view.ordered.store64(offset, v);
    else this.#view.store64(offset, v);
  }

  /** One 8-bit store with no barrier (`writeb_relaxed`): batch, then a barrier or an ordered write. */
  write8Relaxed(offset: number, value: number): void {
    const v = registerValue("write8Relaxed", value, 1, this.path);
    this.#enter("write8Relaxed", offset, 1);
    this.#view.ordered.store8Relaxed(offset, v);
  }
  /** One 16-bit store with no barrier. */
  write16Relaxed(offset: number, value: number): void {
    const v = registerValue("write16Relaxed", value, 2, this.path);
    this.#enter("write16Relaxed", offset, 2);
    this.#view.ordered.store16Relaxed(offset, v);
  }
  /** One 32-bit store with no barrier (`writel_relaxed`). */
  write32Relaxed(offset: number, value: number): void {
    const v = registerValue("write32Relaxed", value, 4, this.path);
    this.#enter("write32Relaxed", offset, 4);
    this.#view.ordered.store32Relaxed(offset, v);
  }
  /** One 64-bit store with no barrier. */
  write64Relaxed(offset: number, value: bigint): void {
    const v = registerValue64("write64Relaxed", value, this.path);
    this.#enter("write64Relaxed", offset, 8);
    this.#view.ordered.store64Relaxed(offset, v);
  }

  /** A copy of `length` bytes at `offset` (memcpy: fine for RAM and device memory, not for registers with read side effects). */
  read(offset: number, length: number): Uint8Array {
    this.#alive("read");
    checkRange("read", offset, length, this.length, this.path);
    if (this.#gate && length > 0 && !this.#gate.usable()) throw this.#gate.refusal("read");
    return this.#view.bytes.slice(offset, offset + length);
  }

  /** Copies `data` in at `offset`. */
  write(offset: number, data: Uint8Array): void {
    this.#alive("write");
    if (!(data instanceof Uint8Array)) throw invalidArgument("write", "data is not a Uint8Array", "Pass the bytes as a Uint8Array.", this.path);
    checkRange("write", offset, data.byteLength, this.length, this.path);
    if (this.#gate && data.byteLength > 0 && !this.#gate.usable()) throw this.#gate.refusal("write");
    this.#view.bytes.set(data, offset);
  }

  /**
   * Detach every view, then munmap(2). Idempotent. After this, any access
   * throws a VfioError (ECLOSED) instead of faulting.
   */
  close(): void {
    if (!this.#live) return;
    this.#live = false;
    unmapLeaked.unregister(this);
    this.#view.release();
    check(sys().munmap(this.#pointer, this.length), "munmap", this.path);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
