/**
 * Turning eventfd stream chunks into interrupt counts.
 *
 * Each read(2) of an eventfd yields one little-endian u64: the interrupts
 * coalesced since the previous read. Bun's file stream keeps reading until
 * EAGAIN and may hand several of those 8-byte values over in one chunk (and,
 * in principle, split one across chunks), so chunks are summed 8 bytes at a
 * time with any remainder carried into the next chunk.
 */

/** Sums the u64 counters in a stream of chunks; keeps a partial counter between chunks. */
export class CounterChunks {
  readonly #carry = new Uint8Array(8);
  #carried = 0;

  /** Bytes of a partial counter waiting for the rest (0 in practice). */
  get carried(): number {
    return this.#carried;
  }

  /** Adds one chunk and returns the sum of the counters it completes. */
  push(chunk: Uint8Array): number {
    let sum = 0;
    let at = 0;
    if (this.#carried > 0) {
      const take = Math.min(8 - this.#carried, chunk.byteLength);
      this.#carry.set(chunk.subarray(0, take), this.#carried);
      this.#carried += take;
      at = take;
      if (this.#carried < 8) return 0;
      sum += readU64(this.#carry, 0);
      this.#carried = 0;
    }
    for (; at + 8 <= chunk.byteLength; at += 8) sum += readU64(chunk, at);
    if (at < chunk.byteLength) {
      this.#carry.set(chunk.subarray(at), 0);
      this.#carried = chunk.byteLength - at;
    }
    return sum;
  }
}

/** A little-endian u64 at `at` as a number (counts never approach 2^53). */
function readU64(bytes: Uint8Array, at: number): number {
  const lo = (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
  const hi = (bytes[at + 4]! | (bytes[at + 5]! << 8) | (bytes[at + 6]! << 16) | (bytes[at + 7]! << 24)) >>> 0;
  return hi * 0x1_0000_0000 + lo;
}
