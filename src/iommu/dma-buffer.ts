/**
 * DMA buffers: process memory that devices reach through the IOMMU.
 *
 * A buffer is anonymous shared memory (MAP_SHARED so a fork cannot turn the
 * pages the IOMMU holds into copy-on-write strangers), populated up front,
 * optionally on huge pages, mapped at an IOVA of the container's allocator.
 * The mapping belongs to the container, not to a device: every device of
 * every group in the container sees the buffer at the same IOVA.
 *
 * Teardown order matters: the IOMMU mapping goes first (VFIO_IOMMU_UNMAP_DMA),
 * and only then the memory (munmap). The reverse would leave the device a
 * window onto pages the process no longer owns. A buffer dropped without
 * close() is released in that order by a FinalizationRegistry keyed on its
 * memory (so never while a view of it is reachable).
 *
 * A buffer depends only on its {@link DmaSpace} (a type1 Container or an
 * Iommufd). In no-IOMMU mode (`space.addressing === "physical"`) nothing is
 * mapped: the buffer lives on huge pages, which are contiguous and never
 * move, and `iova` is its physical address (see ./physical.ts).
 */
import { VfioError, invalidArgument, useAfterClose } from "../support/errors.ts";
import { oneOf, optionsArg, u64Arg } from "../support/args.ts";
import { hex, show } from "../support/format.ts";
import { MappedMemory, checkRange } from "../sys/mmio.ts";
import { sys } from "../sys/runtime.ts";
import type { Pointer } from "../sys/types.ts";
import { MAP_ANONYMOUS, MAP_POPULATE, MAP_SHARED } from "../sys/constants.ts";
import { pageSize } from "../sys/memory.ts";
import { readOptional } from "../host/sysfs.ts";
import type { DmaSpace } from "./dma-space.ts";
import { hexIova } from "./iova-allocator.ts";
import { HUGE_PAGES, hugePageMmapFlags, hugePageShortage, type HugePageSize } from "./huge-pages.ts";
import { exceedsMemlock, memlockHint, memlockStatus } from "./memlock.ts";
import { dmaSegments, type DmaSegment, type SegmentOptions } from "./segments.ts";
import { physicalBacking } from "./physical.ts";

/**
 * What the device may do with a buffer (VFIO_DMA_MAP_FLAG_READ / _WRITE).
 * The IOMMU enforces what it can: Intel VT-d under Linux 5.13 and later
 * (until the 2025 fix restoring write-only entries) maps write-only as
 * read-write, so treat "write-only" as a statement of intent there.
 */
export type DmaAccess = "read-write" | "read-only" | "write-only";

/** Options of {@link DmaBuffer.allocate}. */
export interface DmaBufferOptions {
  /** Map at this IOVA instead of one from the allocator (reserved in it; EEXIST if taken). */
  iova?: bigint;
  /** IOVA alignment (a power of two); default the page size backing the buffer. */
  align?: bigint | number;
  /** Exclusive upper bound of the IOVA range, for devices with a narrow DMA mask (edu: `1n << 28n`). */
  limit?: bigint | number;
  /** The device's access: `"read-write"` (default), `"read-only"` (device reads, never writes) or `"write-only"`. */
  access?: DmaAccess;
  /**
   * Back the buffer with 2 MiB or 1 GiB huge pages when the host has enough
   * free; else normal pages and a `fallbackReason`. In no-IOMMU mode huge
   * pages are required (default `"2M"`) and never fall back.
   */
  hugePages?: HugePageSize;
  /** With `hugePages`: throw instead of falling back to normal pages. */
  requireHugePages?: boolean;
}

/** The memory behind a buffer and why it is what it is. */
interface Backing {
  memory: MappedMemory;
  pageSize: number;
  fallbackReason: string | undefined;
}

/**
 * Page-aligned memory mapped for DMA in a container. `bytes` is the CPU's
 * view, `iova` the devices'. Close it (or `using`) to unmap it from the
 * IOMMU and free it; closing the container does that for every buffer.
 *
 * ```ts
 * using buf = DmaBuffer.allocate(container, 4096, { limit: 1n << 28n });
 * buf.bytes.set(pattern);
 * bar.write64(0x80, buf.iova);          // tell the device where it is
 * ```
 */
export class DmaBuffer implements Disposable {
  readonly #memory: MappedMemory;
  #mapped = true;
  #untrack: () => void;
  #closedWhy: string | undefined;
  /** The DMA space (container) whose IOMMU maps this buffer, shared by all its devices. */
  readonly space: DmaSpace;
  /** The device-side address of byte 0: the IOVA, or in no-IOMMU mode the physical (bus) address. */
  readonly iova: bigint;
  /** Length in bytes: the size asked for, rounded up to `pageSize`; all of it is mapped. */
  readonly size: number;
  /** What devices may do: read, write or both. */
  readonly access: DmaAccess;
  /** The page size backing the memory: the host page size, or 2 MiB / 1 GiB on huge pages. */
  readonly pageSize: number;
  /** Why huge pages were asked for but not used, or undefined. */
  readonly fallbackReason: string | undefined;

  private constructor(space: DmaSpace, backing: Backing, iova: bigint, access: DmaAccess) {
    this.space = space;
    this.#untrack = space.trackDma(this);
    this.#memory = backing.memory;
    this.size = backing.memory.length;
    this.pageSize = backing.pageSize;
    this.fallbackReason = backing.fallbackReason;
    this.iova = iova;
    this.access = access;
  }

  /**
   * Allocates `size` bytes (rounded up to the page size), picks an IOVA from
   * `container.iovaAllocator` (or reserves `options.iova`) and maps it for the
   * container's devices. Internally this calls mmap(2) with
   * MAP_SHARED|MAP_ANONYMOUS|MAP_POPULATE (|MAP_HUGETLB) and VFIO_IOMMU_MAP_DMA.
   * ENOMEM from the map names RLIMIT_MEMLOCK, what is locked and how to raise it;
   * ENOSPC names the DMA mappings left (vfio_iommu_type1 dma_entry_limit).
   * Over iommufd the map is IOMMU_IOAS_MAP. In no-IOMMU mode: huge pages,
   * their physical address from /proc/self/pagemap (CAP_SYS_ADMIN), no map.
   */
  static allocate(space: DmaSpace, size: number, options: DmaBufferOptions = {}): DmaBuffer {
    const op = "DmaBuffer.allocate";
    const container = space;
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0) throw invalidArgument(op, `size ${show(size)} is not a positive integer`, "Give the buffer size in bytes.", container.path);
    options = optionsArg(op, options, container.path);
    const access = options.access === undefined ? "read-write" : oneOf(op, "access", options.access, ["read-write", "read-only", "write-only"], container.path);
    if (options.hugePages !== undefined) oneOf(op, "hugePages", options.hugePages, Object.keys(HUGE_PAGES) as HugePageSize[], container.path);
    if (space.addressing === "physical") return DmaBuffer.#allocatePhysical(space, size, options, access);
    const allocator = container.iovaAllocator; // before any mmap: needs an attached group
    const backing = mapBacking(size, options, container.path);
    let iova: bigint | undefined;
    try {
      const pageAlign = BigInt(backing.pageSize);
      if (options.iova !== undefined) {
        allocator.reserve(options.iova, backing.memory.length);
        iova = options.iova;
      } else {
        const asked = options.align === undefined ? pageAlign : u64Arg(op, "align", options.align, container.path);
        if (asked === 0n || (asked & (asked - 1n)) !== 0n) throw invalidArgument(op, `align ${hex(asked)} is not a power of two`, "Use a power of two such as 0x1000 or 0x200000.", container.path);
        const align = asked < pageAlign ? pageAlign : asked;
        iova = allocator.allocate(backing.memory.length, { align, limit: options.limit });
      }
      mapDma(container, backing.memory, iova, access);
    } catch (err) {
      if (iova !== undefined) allocator.free(iova);
      backing.memory.close();
      throw err;
    }
    const buffer = new DmaBuffer(container, backing, iova, access);
    gcBackstop.register(backing.memory.bytes.buffer, { unmap: container.backstopUnmap, iova, size: backing.memory.length, pointer: backing.memory.pointer, length: backing.memory.length }, buffer);
    return buffer;
  }

  /** No-IOMMU mode: contiguous huge pages at a physical address the device uses as is. */
  static #allocatePhysical(space: DmaSpace, size: number, options: DmaBufferOptions, access: DmaAccess): DmaBuffer {
    const op = "DmaBuffer.allocate";
    if (options.iova !== undefined) throw invalidArgument(op, "iova cannot be chosen without an IOMMU", "In no-IOMMU mode a buffer's bus address is its physical address: leave iova out.", space.path);
    const align = options.align === undefined ? 1n : u64Arg(op, "align", options.align, space.path);
    if (align === 0n || (align & (align - 1n)) !== 0n) throw invalidArgument(op, `align ${hex(align)} is not a power of two`, "Use a power of two such as 0x1000 or 0x200000.", space.path);
    const limit = options.limit === undefined ? undefined : u64Arg(op, "limit", options.limit, space.path);
    const backing = physicalBacking(size, options.hugePages ?? "2M", { limit, align, path: space.path });
    const buffer = new DmaBuffer(space, { memory: backing.memory, pageSize: backing.pageSize, fallbackReason: undefined }, backing.physical, access);
    buffer.#mapped = false;
    gcBackstop.register(backing.memory.bytes.buffer, { unmap: () => {}, iova: backing.physical, size: backing.memory.length, pointer: backing.memory.pointer, length: backing.memory.length }, buffer);
    return buffer;
  }

  /** The process address of byte 0 (for FFI calls and VFIO_IOMMU_MAP_DMA). Throws after close. */
  get address(): bigint {
    this.#alive("address");
    return this.#memory.address;
  }

  #alive(op: string): void {
    if (this.#closedWhy !== undefined) throw new VfioError({ ...useAfterClose(op, "DMA buffer", this.space.path), detail: this.#closedWhy, hint: "Allocate a new buffer (after re-adding a group, if the container lost its last one)." });
  }

  /**
   * The CPU's view of the whole buffer. Fine for filling and for reading
   * after the device is done; to poll memory the device is writing, use
   * read32/read64, which the JIT never hoists out of a loop. Detached
   * (length 0) after close.
   */
  get bytes(): Uint8Array {
    return this.#memory.bytes;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closedWhy !== undefined;
  }

  /** The IOVA of byte `offset` (what to program into a device). */
  iovaAt(offset: number): bigint {
    this.#alive("iovaAt");
    checkRange("iovaAt", offset, 0, this.size, this.space.path);
    return this.iova + BigInt(offset);
  }

  /** One 8-bit load through bun:ffi `read.u8` (safe while the device writes). */
  read8(offset: number): number {
    return this.#memory.read8(offset);
  }
  /** One 16-bit load through bun:ffi `read.u16`. */
  read16(offset: number): number {
    return this.#memory.read16(offset);
  }
  /** One 32-bit load then a read barrier (`dma_rmb`): a fresh load every call, for polling completions; what you read after it is not read early. */
  read32(offset: number): number {
    return this.#memory.read32(offset);
  }
  /** One 64-bit load through bun:ffi `read.u64`. */
  read64(offset: number): bigint {
    return this.#memory.read64(offset);
  }
  /** One 8-bit store. */
  write8(offset: number, value: number): void {
    this.#memory.write8(offset, value);
  }
  /** One 16-bit store. */
  write16(offset: number, value: number): void {
    this.#memory.write16(offset, value);
  }
  /** One 32-bit store. */
  write32(offset: number, value: number): void {
    this.#memory.write32(offset, value);
  }
  /** One 64-bit store. */
  write64(offset: number, value: bigint): void {
    this.#memory.write64(offset, value);
  }

  /** A copy of `length` bytes at `offset` (a snapshot; take it after the device signalled completion). */
  read(offset: number, length: number): Uint8Array {
    checkRange("read", offset, length, this.size, this.space.path);
    return this.#memory.bytes.slice(offset, offset + length);
  }

  /** Copies `data` into the buffer at `offset`. */
  write(offset: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw invalidArgument("write", "data is not a Uint8Array", "Pass the bytes as a Uint8Array.", this.space.path);
    checkRange("write", offset, data.length, this.size, this.space.path);
    this.#memory.bytes.set(data, offset);
  }

  /**
   * A scatter list for `[offset, offset + length)` of the buffer (default:
   * all of it): IOVA segments of at most `maxSegment` bytes, optionally never
   * crossing a multiple of `options.boundary`.
   */
  segments(maxSegment: number, options: SegmentOptions & { offset?: number; length?: number } = {}): DmaSegment[] {
    this.#alive("segments");
    const offset = options.offset ?? 0;
    const length = options.length ?? this.size - offset;
    checkRange("segments", offset, length, this.size, this.space.path);
    return dmaSegments(this.iova + BigInt(offset), length, maxSegment, options);
  }

  /**
   * Unmaps the buffer from the IOMMU, then frees the memory and its IOVA.
   * Idempotent. When the kernel has already dropped the mapping (the
   * container's last group left) only the memory is freed. If the unmap
   * fails, the memory is still freed (the kernel keeps the pinned pages) but
   * the IOVA is kept out of the allocator, since the IOMMU may still map it.
   * Internally this calls VFIO_IOMMU_UNMAP_DMA and munmap(2).
   */
  close(): void {
    this.release("close");
  }

  /** @internal DmaOwner: the space closes (`"close"`) or the kernel dropped every mapping (`"dropped"`). */
  release(reason: "close" | "dropped"): void {
    if (this.#closedWhy !== undefined) return;
    this.#closedWhy = reason === "close" ? "the DMA buffer is closed" : "the container's last group left, so the kernel dropped every DMA mapping, this buffer's too";
    gcBackstop.unregister(this);
    this.#untrack();
    let failure: unknown;
    if (this.#mapped && reason === "close" && this.space.canMap) {
      try {
        const allocator = this.space.iovaAllocator;
        this.space.unmapDma(this.iova, this.size);
        // The unmap may have found the kernel had dropped everything (hot-unplug): the allocator is gone then.
        if (!allocator.closed) allocator.free(this.iova);
      } catch (err) {
        failure = err;
      }
    }
    this.#mapped = false;
    try {
      this.#memory.close();
    } catch (err) {
      failure ??= err;
    }
    if (failure !== undefined) throw failure;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** What the GC backstop needs to release a dropped buffer: the IOMMU unmap first, then munmap. */
interface Leaked {
  unmap: (iova: bigint, size: number) => void;
  iova: bigint;
  size: number;
  pointer: Pointer;
  length: number;
}

const gcBackstop = new FinalizationRegistry<Leaked>((leaked) => {
  leaked.unmap(leaked.iova, leaked.size);
  sys().munmap(leaked.pointer, leaked.length);
});

/** mmap(2) the buffer's memory: huge pages when asked and available, else normal pages. */
function mapBacking(size: number, options: DmaBufferOptions, path: string): Backing {
  const flags = MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE;
  let fallbackReason: string | undefined;
  if (options.hugePages !== undefined) {
    const huge = HUGE_PAGES[options.hugePages];
    if (huge === undefined) throw invalidArgument("DmaBuffer.allocate", `huge page size "${options.hugePages}" is unknown`, 'Use "2M" or "1G".', path);
    const length = roundUp(size, huge.bytes);
    fallbackReason = hugePageShortage(options.hugePages, length / huge.bytes);
    if (fallbackReason === undefined) {
      try {
        const memory = MappedMemory.mapAnonymous(length, flags | hugePageMmapFlags(options.hugePages), { op: "mmap(MAP_HUGETLB)", path, noBackstop: true, ordering: "dma" });
        return { memory, pageSize: huge.bytes, fallbackReason: undefined };
      } catch (err) {
        if (!(err instanceof VfioError)) throw err;
        fallbackReason = `mmap(MAP_HUGETLB) of ${length} bytes failed with ${err.code} (the free huge pages were taken meanwhile, or a cgroup limit applies)`;
      }
    }
    if (options.requireHugePages) {
      throw new VfioError({ op: "DmaBuffer.allocate", errno: 12, code: "ENOMEM", path, detail: `no ${options.hugePages} huge pages: ${fallbackReason}`, hint: "Reserve huge pages (nr_hugepages, or hugepages= on the kernel command line), or drop requireHugePages to fall back to normal pages." });
    }
  }
  const host = pageSize();
  const memory = MappedMemory.mapAnonymous(roundUp(size, host), flags, { op: "mmap", path, noBackstop: true, ordering: "dma" });
  return { memory, pageSize: host, fallbackReason };
}

/** VFIO_IOMMU_MAP_DMA with the access flags, turning ENOMEM and ENOSPC into errors that say which limit was hit. */
function mapDma(container: DmaSpace, memory: MappedMemory, iova: bigint, access: DmaAccess): void {
  try {
    container.mapDma({ vaddr: memory.address, iova, size: memory.length, read: access !== "write-only", write: access !== "read-only" });
  } catch (err) {
    if (!(err instanceof VfioError)) throw err;
    if (err.code === "ENOMEM") {
      const status = memlockStatus();
      const detail = exceedsMemlock(status, memory.length) ? `RLIMIT_MEMLOCK exceeded mapping ${memory.length} bytes at ${hexIova(iova)}` : `pinning ${memory.length} bytes at ${hexIova(iova)} failed`;
      throw new VfioError({ op: err.op, errno: err.errno, code: err.code, path: err.path, detail, hint: memlockHint(status, memory.length), cause: err });
    }
    if (err.code === "ENOSPC") {
      let available = "unknown";
      try {
        available = String((container as { iommuInfo?: () => { dmaAvailable?: number } }).iommuInfo?.().dmaAvailable ?? "unknown");
      } catch {
        // keep "unknown"
      }
      const limit = readOptional("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit") ?? "unknown";
      throw new VfioError({
        op: err.op, errno: err.errno, code: err.code, path: err.path,
        detail: `no DMA mappings left in this container (dmaAvailable ${available}, vfio_iommu_type1 dma_entry_limit ${limit})`,
        hint: "Close buffers you no longer need, use fewer larger buffers, or raise the limit: modprobe vfio_iommu_type1 dma_entry_limit=<n> (or its /sys/module parameter).",
        cause: err,
      });
    }
    throw err;
  }
}

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}
