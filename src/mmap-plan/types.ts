/**
 * Types of the mmap decision: what the planner is told about a BAR and what
 * it answers. Plain data so that a plan can be logged, compared and tested.
 */

/**
 * How bold the planner may be with pages holding the MSI-X table or PBA.
 * - `"auto"` (default): map them only when the kernel advertises
 *   `MSIX_MAPPABLE` and MSIs are isolated (attested or observed).
 * - `"strict"`: never map a page holding the MSI-X table or PBA.
 * - `"force"`: map whatever the kernel allows, even without MSI isolation.
 *   Unsafe: without interrupt remapping a stray table write can make the
 *   device send any MSI to any CPU.
 */
export type MmapPolicy = "auto" | "strict" | "force";

/**
 * How sure we are that the device's MSIs are isolated (interrupt remapping,
 * ARM ITS): `attested` by the kernel's own check, `observed` in
 * /proc/interrupts, merely `capable` (hardware bit), known `none`, or `unknown`.
 */
export type IsolationLevel = "attested" | "observed" | "capable" | "none" | "unknown";

/** The host's MSI isolation with the evidence that led to it. */
export interface IsolationVerdict {
  level: IsolationLevel;
  /** One human-readable line per piece of evidence, including files that could not be read. */
  evidence: string[];
  /** true for attested|observed */
  isolated: boolean;
}

/** One entry of `VFIO_REGION_INFO_CAP_SPARSE_MMAP`: a byte range of the region the kernel lets us mmap. */
export interface SparseArea {
  offset: number;
  size: number;
}

/** What `VFIO_DEVICE_GET_REGION_INFO` said about one BAR. */
export interface BarRegionInfo {
  /** BAR number 0..5. */
  index: number;
  /** Region size in bytes (a `number`: BARs we map fit in 2^53). */
  size: number;
  /** `VFIO_REGION_INFO_FLAG_READ`. */
  readable: boolean;
  /** `VFIO_REGION_INFO_FLAG_WRITE`. */
  writable: boolean;
  /** `VFIO_REGION_INFO_FLAG_MMAP`. */
  mmappable: boolean;
  /**
   * `VFIO_REGION_INFO_CAP_SPARSE_MMAP` areas, in any order. Absent when the
   * capability is absent; an empty array means nothing may be mapped.
   */
  sparseAreas?: SparseArea[];
  /** `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE` present (Linux 4.16+). */
  msixMappable: boolean;
}

/**
 * Where the MSI-X structures live, from the MSI-X capability in config space.
 * Sizes in bytes: table = 16 * vectors, PBA = 8 * ceil(vectors / 64).
 */
export interface MsixLayout {
  tableBar: number;
  tableOffset: number;
  tableSize: number;
  pbaBar: number;
  pbaOffset: number;
  pbaSize: number;
}

/** A byte range `[start, end)` of the BAR and how it is reached: mmap view or `pread`/`pwrite`. */
export interface PlanRange {
  start: number;
  end: number;
  access: "mmap" | "trap";
  /** Short human reason, shown by `explain()`. */
  reason: string;
}

/** A byte range `[start, end)` of the BAR holding an MSI-X structure; the accessor refuses writes there unless told otherwise. */
export interface GuardedRange {
  start: number;
  end: number;
  what: "msix-table" | "msix-pba";
}

/** The decision for one BAR: ranges that tile `[0, size)` exactly, in order. */
export interface MmapPlan {
  bar: number;
  size: number;
  pageSize: number;
  policy: MmapPolicy;
  isolation: IsolationVerdict;
  /** Which of the four rules of the decision applied (see `planBarMmap`). */
  rule: 1 | 2 | 3 | 4;
  ranges: PlanRange[];
  /** MSI-X table and PBA bytes inside this BAR, whatever the rule. */
  guarded: GuardedRange[];
  /** bytes mapped */
  mappedBytes: number;
  /** bytes trapped */
  trappedBytes: number;
  /** A short multi-line account of the decision for humans. */
  explain(): string;
}
