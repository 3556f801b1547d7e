/**
 * Scatter lists: cutting an IOVA range into the pieces a device's
 * descriptors can carry. Pure.
 */
import { invalidArgument } from "../support/errors.ts";

/** One scatter-list entry: `length` bytes at device address `iova`. */
export interface DmaSegment {
  iova: bigint;
  length: number;
}

/** Options of {@link dmaSegments}. */
export interface SegmentOptions {
  /**
   * A power of two no segment may cross (an address where `iova % boundary`
   * is 0 always starts a new segment), e.g. 4096 for NVMe PRP entries.
   */
  boundary?: number;
}

/**
 * Cuts `[iova, iova + length)` into segments of at most `maxSegment` bytes,
 * in address order, never crossing a multiple of `options.boundary`.
 */
export function dmaSegments(iova: bigint, length: number, maxSegment: number, options: SegmentOptions = {}): DmaSegment[] {
  if (!Number.isSafeInteger(maxSegment) || maxSegment <= 0) {
    throw invalidArgument("segments", `maximum segment ${maxSegment} is not a positive integer`, "Give the device's largest transfer per descriptor in bytes.");
  }
  if (!Number.isSafeInteger(length) || length < 0) throw invalidArgument("segments", `length ${length} is not a non-negative integer`, "Give the length in bytes.");
  const boundary = options.boundary === undefined ? 0n : BigInt(options.boundary);
  if (options.boundary !== undefined && (boundary <= 0n || (boundary & (boundary - 1n)) !== 0n)) {
    throw invalidArgument("segments", `boundary ${options.boundary} is not a power of two`, "Use a power of two such as 4096, or no boundary.");
  }
  const out: DmaSegment[] = [];
  let at = iova;
  const end = iova + BigInt(length);
  while (at < end) {
    let stop = at + BigInt(maxSegment);
    if (boundary > 0n) {
      const next = (at | (boundary - 1n)) + 1n;
      if (next < stop) stop = next;
    }
    if (stop > end) stop = end;
    out.push({ iova: at, length: Number(stop - at) });
    at = stop;
  }
  return out;
}
