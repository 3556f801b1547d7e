/**
 * IOVA allocation for one DMA address space (a container): pure bookkeeping,
 * no system calls. It hands out IO virtual addresses inside the ranges the
 * IOMMU can translate, at the IOMMU's page granule, and takes them back.
 *
 * Free space is a sorted list of half-open spans, coalesced on free; a
 * request takes the smallest span it fits in (best fit, lowest address
 * first), so freed holes are reused before a big span is cut into.
 */
import { invalidArgument, useAfterClose, VfioError } from "../support/errors.ts";
import { optionsArg, u64Arg } from "../support/args.ts";
import { hex } from "../support/format.ts";
import type { IovaRange } from "../uapi/structs.ts";

/**
 * The space assumed when the kernel reports no usable ranges (kernels before
 * 5.4 lack VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE): `[0, 2^48)`. It may include
 * addresses the IOMMU cannot translate or reserves (the MSI window at
 * 0xfee00000 on x86): on such kernels reserve those yourself.
 */
export const DEFAULT_IOVA_RANGES: readonly IovaRange[] = Object.freeze([{ start: 0n, end: (1n << 48n) - 1n }]);

/** Options of the {@link IovaAllocator} constructor. */
export interface IovaAllocatorOptions {
  /** Usable IOVA ranges with inclusive ends (`container.iommuInfo().iovaRanges`); default {@link DEFAULT_IOVA_RANGES}. */
  ranges?: readonly IovaRange[];
  /** The IOMMU page-size bitmap (`iommuInfo().pageSizes`); its smallest set bit is the granule. Default 4 KiB. */
  pageSizes?: bigint;
  /** Named in errors (the container node). */
  path?: string;
}

/** Constraints of one {@link IovaAllocator.allocate} request. */
export interface IovaRequest {
  /** IOVA alignment, a power of two; raised to the granule when smaller. */
  align?: bigint | number;
  /** Exclusive upper bound: the whole block ends at or below it (e.g. `1n << 28n` for a 28-bit DMA mask). */
  limit?: bigint | number;
}

/** A block of IOVA space `[iova, iova + size)`. */
export interface IovaBlock {
  iova: bigint;
  size: bigint;
}

/** Half-open `[start, end)`. */
interface Span {
  start: bigint;
  end: bigint;
}

const NO_LIMIT = 1n << 64n;

/** `0x…` for a bigint. */
export function hexIova(n: bigint): string {
  return hex(n);
}

function alignUp(n: bigint, align: bigint): bigint {
  return (n + align - 1n) & -align;
}

function isPowerOfTwo(n: bigint): boolean {
  return n > 0n && (n & (n - 1n)) === 0n;
}

/**
 * An IOVA allocator over a container's usable ranges. Obtain the one that
 * belongs to a container from `container.iova`; DmaBuffer uses it for you.
 * Sizes are rounded up to the granule (the smallest IOMMU page size).
 */
export class IovaAllocator {
  /** The smallest unit handed out: the smallest page size the IOMMU supports. */
  readonly granule: bigint;
  #ranges: Span[];
  #free: Span[];
  readonly #used = new Map<bigint, bigint>();
  readonly #path: string | undefined;
  #closed = false;

  constructor(options: IovaAllocatorOptions = {}) {
    const bitmap = options.pageSizes ?? 0x1000n;
    if (bitmap <= 0n) throw invalidArgument("IovaAllocator", "the page-size bitmap is empty", "Pass container.iommuInfo().pageSizes.", options.path);
    this.granule = bitmap & -bitmap;
    this.#path = options.path;
    this.#ranges = this.#clip(options.ranges ?? DEFAULT_IOVA_RANGES);
    this.#free = this.#ranges.map((r) => ({ ...r }));
  }

  /** Kernel ranges (inclusive ends) to granule-aligned half-open spans, sorted, empty ones dropped. */
  #clip(ranges: readonly IovaRange[]): Span[] {
    return ranges
      .map((r) => ({ start: alignUp(r.start, this.granule), end: (r.end + 1n) & -this.granule }))
      .filter((s) => s.end > s.start)
      .sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  /** The usable ranges after alignment to the granule (inclusive ends, like the kernel's). */
  get ranges(): IovaRange[] {
    return this.#ranges.map((s) => ({ start: s.start, end: s.end - 1n }));
  }

  /** The free blocks, lowest first. */
  freeBlocks(): IovaBlock[] {
    return this.#free.map((s) => ({ iova: s.start, size: s.end - s.start }));
  }

  /** The blocks handed out by allocate() and reserve(), lowest first. */
  allocations(): IovaBlock[] {
    return [...this.#used].map(([iova, size]) => ({ iova, size })).sort((a, b) => (a.iova < b.iova ? -1 : 1));
  }

  /** The size of the block allocated or reserved at exactly `iova`, or undefined. */
  sizeOf(iova: bigint): bigint | undefined {
    return this.#used.get(iova);
  }

  /** The largest free block (clipped to `limit`), or undefined when nothing is free below it. */
  largestFree(limit: bigint | number = NO_LIMIT): IovaBlock | undefined {
    const top = BigInt(limit);
    let best: IovaBlock | undefined;
    for (const s of this.#free) {
      const size = (s.end < top ? s.end : top) - s.start;
      if (size > 0n && (best === undefined || size > best.size)) best = { iova: s.start, size };
    }
    return best;
  }

  /**
   * Takes a free block of `size` bytes (rounded up to the granule) that
   * satisfies the alignment and the limit, and returns its IOVA.
   * Throws a VfioError ENOSPC naming the largest free block under the limit.
   */
  allocate(size: bigint | number, request: IovaRequest = {}): bigint {
    this.#alive("IOVA allocate");
    const req = optionsArg("IOVA allocate", request, this.#path);
    const want = this.#roundSize("allocate", size);
    const align = this.#alignment(req.align);
    const limit = req.limit === undefined ? NO_LIMIT : u64Arg("IOVA allocate", "limit", req.limit, this.#path);
    if (limit <= 0n) throw invalidArgument("IOVA allocate", `limit ${hexIova(limit)} is not positive`, "Give the device's address limit, e.g. 1n << 32n for 32-bit DMA.", this.#path);
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const s = this.#free[i]!;
      const at = alignUp(s.start, align);
      const end = at + want;
      if (end > s.end || end > limit) continue;
      if (best < 0 || s.end - s.start < this.#free[best]!.end - this.#free[best]!.start) best = i;
    }
    if (best < 0) throw this.#exhausted(want, align, limit);
    const at = alignUp(this.#free[best]!.start, align);
    this.#take(best, at, at + want);
    return at;
  }

  /**
   * Takes the block `[iova, iova + size)` for a fixed-IOVA mapping. Throws
   * EEXIST when it overlaps an allocated or reserved block, EINVAL when it is
   * unaligned or not inside the usable ranges.
   */
  reserve(iova: bigint, size: bigint | number): bigint {
    this.#alive("IOVA reserve");
    u64Arg("IOVA reserve", "iova", iova, this.#path);
    const want = this.#roundSize("IOVA reserve", size);
    if (typeof iova !== "bigint" || iova % this.granule !== 0n) {
      throw invalidArgument("IOVA reserve", `IOVA ${hexIova(iova)} is not aligned to the IOMMU page size ${hexIova(this.granule)}`, `Use a multiple of ${hexIova(this.granule)}.`, this.#path);
    }
    const end = iova + want;
    for (const [at, len] of this.#used) {
      if (at < end && iova < at + len) {
        throw new VfioError({
          op: "IOVA reserve", errno: 17, code: "EEXIST", path: this.#path,
          detail: `[${hexIova(iova)}, ${hexIova(end)}) overlaps the block [${hexIova(at)}, ${hexIova(at + len)}) already in use`,
          hint: "Free that block first, or pick an IOVA outside it (allocator.allocations() lists what is taken).",
        });
      }
    }
    const i = this.#free.findIndex((s) => s.start <= iova && end <= s.end);
    if (i < 0) {
      const usable = this.ranges.map((r) => `[${hexIova(r.start)}, ${hexIova(r.end)}]`).join(", ");
      throw invalidArgument("IOVA reserve", `[${hexIova(iova)}, ${hexIova(end)}) is not inside the usable IOVA ranges ${usable || "(none)"}`,
        "Pick an IOVA inside container.iommuInfo().iovaRanges; the gaps are reserved (MSI window, host bridges).", this.#path);
    }
    this.#take(i, iova, end);
    return want;
  }

  /** Returns the block allocated or reserved at `iova` to the free space; returns its size. */
  free(iova: bigint): bigint {
    this.#alive("IOVA free");
    u64Arg("IOVA free", "iova", iova, this.#path);
    const size = this.#used.get(iova);
    if (size === undefined) {
      throw invalidArgument("IOVA free", `no block starts at ${hexIova(iova)}`, "Free exactly the IOVA that allocate() or reserve() returned, once.", this.#path);
    }
    this.#used.delete(iova);
    // Only the part still inside the usable ranges becomes free again (see restrictTo).
    for (const r of this.#ranges) {
      const start = r.start > iova ? r.start : iova;
      const end = r.end < iova + size ? r.end : iova + size;
      if (end > start) this.#insert({ start, end });
    }
    return size;
  }

  /**
   * Narrows the usable ranges (a group attached later may bring its own
   * reserved regions). Blocks in use stay in use; free space outside the new
   * ranges is dropped.
   */
  restrictTo(ranges: readonly IovaRange[]): void {
    this.#ranges = this.#clip(ranges);
    const free: Span[] = [];
    for (const f of this.#free) {
      for (const r of this.#ranges) {
        const start = r.start > f.start ? r.start : f.start;
        const end = r.end < f.end ? r.end : f.end;
        if (end > start) free.push({ start, end });
      }
    }
    this.#free = free.sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  /** Ends the allocator (its container closed, or the kernel dropped the IOVA space): later calls throw ECLOSED. */
  close(): void {
    this.#closed = true;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  #alive(op: string): void {
    if (this.#closed) throw useAfterClose(op, "IOVA allocator", this.#path);
  }

  #roundSize(op: string, size: bigint | number): bigint {
    const n = u64Arg(op, "size", size, this.#path);
    if (n <= 0n) throw invalidArgument(op, `size ${n} is not positive`, "Give a size of at least one byte.", this.#path);
    return alignUp(n, this.granule);
  }

  #alignment(align: bigint | number | undefined): bigint {
    if (align === undefined) return this.granule;
    const a = u64Arg("IOVA allocate", "align", align, this.#path);
    if (!isPowerOfTwo(a)) throw invalidArgument("IOVA allocate", `alignment ${hexIova(a)} is not a power of two`, "Use a power of two such as 0x1000 or 0x200000.", this.#path);
    return a > this.granule ? a : this.granule;
  }

  /** Cuts `[start, end)` out of free span `i`, records it as used. */
  #take(i: number, start: bigint, end: bigint): void {
    const s = this.#free[i]!;
    const pieces: Span[] = [];
    if (s.start < start) pieces.push({ start: s.start, end: start });
    if (end < s.end) pieces.push({ start: end, end: s.end });
    this.#free.splice(i, 1, ...pieces);
    this.#used.set(start, end - start);
  }

  /** Inserts a free span, merging it with the neighbours it touches. */
  #insert(span: Span): void {
    let i = 0;
    while (i < this.#free.length && this.#free[i]!.start < span.start) i++;
    const prev = this.#free[i - 1];
    const next = this.#free[i];
    if (prev && prev.end === span.start && next && span.end === next.start) {
      prev.end = next.end;
      this.#free.splice(i, 1);
    } else if (prev && prev.end === span.start) prev.end = span.end;
    else if (next && span.end === next.start) next.start = span.start;
    else this.#free.splice(i, 0, span);
  }

  #exhausted(size: bigint, align: bigint, limit: bigint): VfioError {
    const below = limit === NO_LIMIT ? "" : ` below ${hexIova(limit)}`;
    const largest = this.largestFree(limit);
    const what = largest ? `the largest free block${below} is ${hexIova(largest.size)} bytes at ${hexIova(largest.iova)}` : `nothing is free${below}`;
    return new VfioError({
      op: "IOVA allocate", errno: 28, code: "ENOSPC", path: this.#path,
      detail: `no free IOVA block of ${hexIova(size)} bytes aligned to ${hexIova(align)}${below}; ${what}`,
      hint: "Free buffers you no longer need, ask for less (or a smaller alignment), or raise the limit if the device can address more.",
    });
  }
}
