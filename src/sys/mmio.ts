/**
 * Mapped memory: an mmap(2) owner plus the only safe ways to touch device
 * registers from Bun (DESIGN.md, "Facts measured"):
 * - reads use `read.u8/u16/u32/u64` from bun:ffi: single loads that the JIT
 *   never merges or hoists out of a polling loop;
 * - writes use typed-array stores: single stores of the exact width;
 * - never DataView getters (byte-wise loads in slow tiers) nor Atomics
 *   (locked read-modify-write).
 * Unmapping detaches the ArrayBuffer first, so a stale view reads `undefined`
 * instead of touching unmapped memory, and every accessor checks `closed`
 * before a raw-pointer read.
 */
import { read, toArrayBuffer, type Pointer } from "bun:ffi";
import { invalidArgument, useAfterClose } from "../errors.ts";
import { libc, MAP_SHARED, PROT_READ, PROT_WRITE } from "./libc.ts";
import { check, syscallError, type Hints } from "./check.ts";

/** Access widths in bytes. */
export type Width = 1 | 2 | 4 | 8;

/**
 * Checks that `[offset, offset+width)` lies inside `length` and is naturally
 * aligned; throws a VfioError naming `op` and `path` otherwise.
 */
export function checkAccess(op: string, offset: number, width: number, length: number, path?: string): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + width > length) {
    throw invalidArgument(op, `offset 0x${offset.toString(16)} (+${width}) is outside 0x0-0x${length.toString(16)}`,
      "Use an offset inside the region; region.size gives its length.", path);
  }
  if (offset % width !== 0) {
    throw invalidArgument(op, `offset 0x${offset.toString(16)} is not aligned to ${width} bytes`,
      `Device registers are accessed at natural alignment: use a multiple of ${width}.`, path);
  }
}

/** Checks that `[offset, offset+length)` lies inside `size` (bulk copies: any alignment). */
export function checkRange(op: string, offset: number, length: number, size: number, path?: string): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw invalidArgument(op, `range 0x${offset.toString(16)}+0x${length.toString(16)} is outside the region (size 0x${size.toString(16)})`, "Keep offset and length inside the region's size.", path);
  }
}

/** A live mmap(2) of `length` bytes, released by `unmap()`. */
export class MappedMemory {
  #address: number;
  #buffer: ArrayBuffer | undefined;
  #u8: Uint8Array;
  #u16: Uint16Array;
  #u32: Uint32Array;
  #u64: BigUint64Array;
  /** Length of the mapping in bytes. */
  readonly length: number;
  /** Path named in errors (the device this memory belongs to, if any). */
  readonly path: string | undefined;

  private constructor(address: number, length: number, path: string | undefined) {
    this.#address = address;
    this.length = length;
    this.path = path;
    this.#buffer = toArrayBuffer(address as unknown as Pointer, 0, length);
    this.#u8 = new Uint8Array(this.#buffer);
    this.#u16 = new Uint16Array(this.#buffer, 0, length >>> 1);
    this.#u32 = new Uint32Array(this.#buffer, 0, length >>> 2);
    this.#u64 = new BigUint64Array(this.#buffer, 0, Math.floor(length / 8));
  }

  /**
   * mmap(2) `length` bytes of `fd` at `offset` (MAP_SHARED, read/write unless
   * `prot` says otherwise). Internally this calls mmap; failure is -1.
   */
  static mapFile(fd: number, offset: number, length: number, opts: { prot?: number; path?: string; op?: string; hints?: Hints } = {}): MappedMemory {
    const prot = opts.prot ?? (PROT_READ | PROT_WRITE);
    const address = libc.mmap(null, length, prot, MAP_SHARED, fd, offset);
    if (address === -1) throw syscallError(opts.op ?? "mmap", opts.path, opts.hints);
    return new MappedMemory(Number(address), length, opts.path);
  }

  /** mmap(2) anonymous memory (`flags` must include MAP_ANONYMOUS and MAP_SHARED or MAP_PRIVATE). */
  static mapAnonymous(length: number, flags: number, opts: { path?: string; op?: string; hints?: Hints } = {}): MappedMemory {
    const address = libc.mmap(null, length, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (address === -1) throw syscallError(opts.op ?? "mmap", opts.path, opts.hints);
    return new MappedMemory(Number(address), length, opts.path);
  }

  /** True once unmapped. */
  get closed(): boolean {
    return this.#buffer === undefined;
  }

  /** The mapping's address (for DMA map ioctls and FFI calls). Throws after unmap. */
  get address(): number {
    this.#alive("address");
    return this.#address;
  }

  /** A byte view of the whole mapping; detached (length 0) after unmap. */
  get bytes(): Uint8Array {
    this.#alive("bytes");
    return this.#u8;
  }

  #alive(op: string): void {
    if (this.#buffer === undefined) throw useAfterClose(op, "mapping", this.path);
  }

  /** One 8-bit load. */
  read8(offset: number): number {
    this.#alive("read8");
    checkAccess("read8", offset, 1, this.length, this.path);
    return read.u8(this.#address as unknown as Pointer, offset);
  }
  /** One 16-bit load. */
  read16(offset: number): number {
    this.#alive("read16");
    checkAccess("read16", offset, 2, this.length, this.path);
    return read.u16(this.#address as unknown as Pointer, offset);
  }
  /** One 32-bit load. */
  read32(offset: number): number {
    this.#alive("read32");
    checkAccess("read32", offset, 4, this.length, this.path);
    return read.u32(this.#address as unknown as Pointer, offset);
  }
  /** One 64-bit load. */
  read64(offset: number): bigint {
    this.#alive("read64");
    checkAccess("read64", offset, 8, this.length, this.path);
    return read.u64(this.#address as unknown as Pointer, offset);
  }
  /** One 8-bit store. */
  write8(offset: number, value: number): void {
    this.#alive("write8");
    checkAccess("write8", offset, 1, this.length, this.path);
    this.#u8[offset] = value;
  }
  /** One 16-bit store. */
  write16(offset: number, value: number): void {
    this.#alive("write16");
    checkAccess("write16", offset, 2, this.length, this.path);
    this.#u16[offset >>> 1] = value;
  }
  /** One 32-bit store. */
  write32(offset: number, value: number): void {
    this.#alive("write32");
    checkAccess("write32", offset, 4, this.length, this.path);
    this.#u32[offset >>> 2] = value;
  }
  /** One 64-bit store. */
  write64(offset: number, value: bigint): void {
    this.#alive("write64");
    checkAccess("write64", offset, 8, this.length, this.path);
    this.#u64[offset >>> 3] = value;
  }

  /**
   * Detach every view, then munmap(2). Idempotent. After this, any access
   * throws a VfioError (ECLOSED) instead of faulting.
   */
  unmap(): void {
    const buffer = this.#buffer;
    if (buffer === undefined) return;
    this.#buffer = undefined;
    buffer.transfer(0); // detaches u8/u16/u32/u64 and any view a caller kept
    check(libc.munmap(this.#address as unknown as Pointer, this.length), "munmap", this.path);
  }
}
