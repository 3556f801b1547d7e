/**
 * What every runtime's MemoryView shares: an ArrayBuffer over the mapped
 * range, single-width typed-array stores (one store of the exact width;
 * never DataView or Atomics, see DESIGN.md), and release by detaching the
 * buffer so a stale view can never touch unmapped memory. Each runtime adds
 * its own loads (single loads the JIT never hoists) and ordered accessors.
 */
import type { MemoryView, OrderedAccess } from "./types.ts";

export abstract class BufferView implements MemoryView {
  readonly #buffer: ArrayBuffer;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  readonly #u64: BigUint64Array;
  readonly bytes: Uint8Array;
  readonly length: number;

  /** `buffer` must cover exactly the mapped range. */
  constructor(buffer: ArrayBuffer, length: number) {
    this.#buffer = buffer;
    this.length = length;
    this.bytes = new Uint8Array(buffer);
    this.#u16 = new Uint16Array(buffer, 0, length >>> 1);
    this.#u32 = new Uint32Array(buffer, 0, length >>> 2);
    this.#u64 = new BigUint64Array(buffer, 0, Math.floor(length / 8));
  }

  abstract load8(offset: number): number;
  abstract load16(offset: number): number;
  abstract load32(offset: number): number;
  abstract load64(offset: number): bigint;
  abstract readonly ordered: OrderedAccess;

  store8(offset: number, value: number): void {
    this.bytes[offset] = value;
  }
  store16(offset: number, value: number): void {
    this.#u16[offset >>> 1] = value;
  }
  store32(offset: number, value: number): void {
    this.#u32[offset >>> 2] = value;
  }
  store64(offset: number, value: bigint): void {
    this.#u64[offset >>> 3] = value;
  }
  release(): void {
    if (this.#buffer.byteLength > 0) this.#buffer.transfer(0); // detaches every typed array made from it
  }
}
