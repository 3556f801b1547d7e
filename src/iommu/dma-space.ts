/**
 * The one interface DMA memory needs from an IOMMU backend: libvfn's
 * iommu_ctx_ops, rust-vmm's VfioOps. The type1 Container and the iommufd
 * IOAS (Iommufd) implement it; a no-IOMMU container has `physical`
 * addressing and maps nothing.
 */
import type { IovaAllocator } from "./iova-allocator.ts";

/** One DMA mapping request. */
export interface DmaMapRequest {
  /** Process virtual address (page-aligned). */
  vaddr: number | bigint;
  /** IO virtual address the device will use (page-aligned). */
  iova: bigint;
  /** Size in bytes (a multiple of the IOMMU page size). */
  size: number | bigint;
  /** The device may read this memory (default true). */
  read?: boolean;
  /** The device may write this memory (default true). */
  write?: boolean;
}

/** Something holding mappings in a space (a DmaBuffer). */
export interface DmaOwner {
  /**
   * The space is going away (`"close"`: unmap, then free) or the kernel has
   * already dropped every mapping (`"dropped"`: only free the memory).
   */
  release(reason: "close" | "dropped"): void;
}

/** An IOVA space devices share: map, unmap, the usable ranges and the allocator. */
export interface DmaSpace {
  /** Named in errors. */
  readonly path: string;
  readonly closed: boolean;
  /** True while mappings can be made (an IOMMU is set up). */
  readonly canMap: boolean;
  /**
   * How devices reach DMA memory: `"iova"` through an IOMMU mapping, or
   * `"physical"` (no-IOMMU mode: nothing is mapped, a buffer's bus address
   * is its physical address).
   */
  readonly addressing: "iova" | "physical";
  /** The space's IOVA allocator (usable ranges and page sizes from the kernel). */
  readonly iovaAllocator: IovaAllocator;
  /** Maps process memory at an IOVA for every device of the space. */
  mapDma(request: DmaMapRequest): void;
  /** Unmaps exactly what one mapDma mapped; returns the bytes unmapped. */
  unmapDma(iova: bigint, size: number | bigint): bigint;
  /** Tracks an owner; the returned function stops tracking it. */
  trackDma(owner: DmaOwner): () => void;
  /**
   * For garbage-collection backstops: unmaps `[iova, iova+size)` if the
   * space is still open, never throwing. Must not keep the space alive.
   */
  readonly backstopUnmap: (iova: bigint, size: number) => void;
}
