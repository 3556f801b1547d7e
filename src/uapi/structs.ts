/**
 * Encoders and decoders for the linux/vfio.h structs, on plain byte buffers.
 * Little-endian hosts only (x86-64, arm64), like the rest of the library.
 */
import { VfioError } from "../support/errors.ts";
import { OFFSETOF as O, SIZEOF } from "./layout.ts";
import { walkCapChain } from "./caps.ts";
import * as V from "./vfio.ts";

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A zeroed buffer of `size` bytes whose first u32 (`argsz`) is `size`. */
export function argszBuffer(size: number): Uint8Array {
  const buf = new Uint8Array(size);
  view(buf).setUint32(0, size, true);
  return buf;
}

/** The `argsz` the kernel wrote back (how big the buffer must be for all caps). */
export function argszOf(buf: Uint8Array): number {
  return view(buf).getUint32(0, true);
}

// ---- vfio_group_status --------------------------------------------------

/** Decoded `struct vfio_group_status`. */
export interface GroupStatus {
  flags: number;
  /** VFIO_GROUP_FLAGS_VIABLE: every device in the group is bound to a VFIO (or no) driver. */
  viable: boolean;
  /** VFIO_GROUP_FLAGS_CONTAINER_SET: the group is attached to a container. */
  containerSet: boolean;
}

export function decodeGroupStatus(buf: Uint8Array): GroupStatus {
  const flags = view(buf).getUint32(O["vfio_group_status.flags"], true);
  return { flags, viable: (flags & V.VFIO_GROUP_FLAGS_VIABLE) !== 0, containerSet: (flags & V.VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0 };
}

// ---- vfio_device_info ---------------------------------------------------

/** Decoded `struct vfio_device_info` with its capability ids. */
export interface DeviceInfo {
  flags: number;
  numRegions: number;
  numIrqs: number;
  /** VFIO_DEVICE_FLAGS_RESET: VFIO_DEVICE_RESET is supported. */
  canReset: boolean;
  /** VFIO_DEVICE_FLAGS_PCI: a vfio-pci device. */
  isPci: boolean;
  /** Ids of the device info capabilities (zPCI, PCI atomics, ...). */
  capIds: number[];
}

export function decodeDeviceInfo(buf: Uint8Array): DeviceInfo {
  const dv = view(buf);
  const flags = dv.getUint32(O["vfio_device_info.flags"], true);
  const capOffset = (flags & V.VFIO_DEVICE_FLAGS_CAPS) !== 0 ? dv.getUint32(O["vfio_device_info.cap_offset"], true) : 0;
  return {
    flags,
    numRegions: dv.getUint32(O["vfio_device_info.num_regions"], true),
    numIrqs: dv.getUint32(O["vfio_device_info.num_irqs"], true),
    canReset: (flags & V.VFIO_DEVICE_FLAGS_RESET) !== 0,
    isPci: (flags & V.VFIO_DEVICE_FLAGS_PCI) !== 0,
    capIds: walkCapChain(buf, capOffset).map((c) => c.id),
  };
}

// ---- vfio_region_info ---------------------------------------------------

/** One area of a VFIO_REGION_INFO_CAP_SPARSE_MMAP capability. */
export interface SparseMmapArea {
  offset: number;
  size: number;
}

/** Decoded `struct vfio_region_info` with its whole capability chain. */
export interface RegionInfo {
  index: number;
  flags: number;
  /** Region size in bytes. */
  size: number;
  /** Offset of the region in the device fd (for pread/pwrite/mmap): a kernel u64, past 2^53 for high region indexes. */
  offset: bigint;
  readable: boolean;
  writable: boolean;
  mmappable: boolean;
  /** VFIO_REGION_INFO_CAP_SPARSE_MMAP areas, in the kernel's order; undefined when absent. */
  sparseAreas: SparseMmapArea[] | undefined;
  /** VFIO_REGION_INFO_CAP_MSIX_MAPPABLE present. */
  msixMappable: boolean;
  /** VFIO_REGION_INFO_CAP_TYPE: {type, subtype} for device-specific regions. */
  type: { type: number; subtype: number } | undefined;
  /** Every capability id in the chain, in order (unknown ones included). */
  capIds: number[];
}

export function encodeRegionInfoRequest(index: number, argsz: number = SIZEOF.vfio_region_info): Uint8Array {
  const buf = argszBuffer(Math.max(argsz, SIZEOF.vfio_region_info));
  view(buf).setUint32(O["vfio_region_info.index"], index, true);
  return buf;
}

/** A kernel u64 that must fit a JS number (sizes, offsets inside a region); refuses to round. */
function u64(dv: DataView, at: number): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VfioError({ op: "decode", code: "EOVERFLOW", errno: 75, detail: `kernel value ${v} exceeds 2^53`, hint: "This field cannot be represented exactly; please report the device and kernel." });
  }
  return Number(v);
}

/** A u64 field to encode: refuses values outside [0, 2^64) instead of wrapping. */
function setU64(dv: DataView, at: number, v: bigint | number, name: string): void {
  const big = typeof v === "bigint" ? v : Number.isSafeInteger(v) ? BigInt(v) : -1n;
  if (big < 0n || big >= 1n << 64n) {
    throw new VfioError({ op: "encode", code: "EINVAL", errno: 22, detail: `${name} ${String(v)} is not an unsigned 64-bit integer`, hint: `Pass ${name} as a bigint from 0n to 2n ** 64n - 1n.` });
  }
  dv.setBigUint64(at, big, true);
}

export function decodeRegionInfo(buf: Uint8Array): RegionInfo {
  const dv = view(buf);
  const flags = dv.getUint32(O["vfio_region_info.flags"], true);
  const capOffset = (flags & V.VFIO_REGION_INFO_FLAG_CAPS) !== 0 ? dv.getUint32(O["vfio_region_info.cap_offset"], true) : 0;
  const info: RegionInfo = {
    index: dv.getUint32(O["vfio_region_info.index"], true),
    flags,
    size: u64(dv, O["vfio_region_info.size"]),
    offset: dv.getBigUint64(O["vfio_region_info.offset"], true),
    readable: (flags & V.VFIO_REGION_INFO_FLAG_READ) !== 0,
    writable: (flags & V.VFIO_REGION_INFO_FLAG_WRITE) !== 0,
    mmappable: (flags & V.VFIO_REGION_INFO_FLAG_MMAP) !== 0,
    sparseAreas: undefined,
    msixMappable: false,
    type: undefined,
    capIds: [],
  };
  for (const cap of walkCapChain(buf, capOffset)) {
    info.capIds.push(cap.id);
    if (cap.id === V.VFIO_REGION_INFO_CAP_SPARSE_MMAP) info.sparseAreas = decodeSparseAreas(cap.view);
    else if (cap.id === V.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) info.msixMappable = true;
    else if (cap.id === V.VFIO_REGION_INFO_CAP_TYPE && cap.view.byteLength >= SIZEOF.vfio_region_info_cap_type) {
      info.type = {
        type: cap.view.getUint32(O["vfio_region_info_cap_type.type"], true),
        subtype: cap.view.getUint32(O["vfio_region_info_cap_type.subtype"], true),
      };
    }
  }
  return info;
}

function decodeSparseAreas(cap: DataView): SparseMmapArea[] {
  const areas: SparseMmapArea[] = [];
  if (cap.byteLength < SIZEOF.vfio_region_info_cap_sparse_mmap) return areas;
  const count = cap.getUint32(O["vfio_region_info_cap_sparse_mmap.nr_areas"], true);
  const first = O["vfio_region_info_cap_sparse_mmap.areas"];
  const step = SIZEOF.vfio_region_sparse_mmap_area;
  for (let i = 0; i < count && first + (i + 1) * step <= cap.byteLength; i++) {
    const at = first + i * step;
    areas.push({ offset: u64(cap, at), size: u64(cap, at + O["vfio_region_sparse_mmap_area.size"]) });
  }
  return areas;
}

// ---- vfio_irq_info / vfio_irq_set --------------------------------------

/** Decoded `struct vfio_irq_info`. */
export interface IrqInfo {
  index: number;
  count: number;
  flags: number;
  /** VFIO_IRQ_INFO_EVENTFD: signalling through eventfds is supported. */
  eventfd: boolean;
  /** VFIO_IRQ_INFO_MASKABLE: ACTION_MASK / ACTION_UNMASK are supported. */
  maskable: boolean;
  /** VFIO_IRQ_INFO_AUTOMASKED: the kernel masks after each interrupt (INTx); unmask to get the next. */
  automasked: boolean;
  /** VFIO_IRQ_INFO_NORESIZE: the vector count cannot grow while enabled (disable first). */
  noresize: boolean;
}

export function encodeIrqInfoRequest(index: number): Uint8Array {
  const buf = argszBuffer(SIZEOF.vfio_irq_info);
  view(buf).setUint32(O["vfio_irq_info.index"], index, true);
  return buf;
}

export function decodeIrqInfo(buf: Uint8Array): IrqInfo {
  const dv = view(buf);
  const flags = dv.getUint32(O["vfio_irq_info.flags"], true);
  return {
    index: dv.getUint32(O["vfio_irq_info.index"], true),
    count: dv.getUint32(O["vfio_irq_info.count"], true),
    flags,
    eventfd: (flags & V.VFIO_IRQ_INFO_EVENTFD) !== 0,
    maskable: (flags & V.VFIO_IRQ_INFO_MASKABLE) !== 0,
    automasked: (flags & V.VFIO_IRQ_INFO_AUTOMASKED) !== 0,
    noresize: (flags & V.VFIO_IRQ_INFO_NORESIZE) !== 0,
  };
}

/** The data carried by a `struct vfio_irq_set`. */
export type IrqSetData =
  | { kind: "none" }
  | { kind: "bool"; values: boolean[] }
  | { kind: "eventfd"; fds: number[] };

/**
 * Encodes `struct vfio_irq_set` for VFIO_DEVICE_SET_IRQS: `action` is one of
 * VFIO_IRQ_SET_ACTION_{MASK,UNMASK,TRIGGER}; the data kind sets the DATA_* flag.
 * An eventfd of -1 de-assigns that vector.
 */
export function encodeIrqSet(index: number, start: number, count: number, action: number, data: IrqSetData): Uint8Array {
  const dataBytes = data.kind === "none" ? 0 : data.kind === "bool" ? data.values.length : data.fds.length * 4;
  const buf = argszBuffer(SIZEOF.vfio_irq_set + dataBytes);
  const dv = view(buf);
  const dataFlag = data.kind === "none" ? V.VFIO_IRQ_SET_DATA_NONE : data.kind === "bool" ? V.VFIO_IRQ_SET_DATA_BOOL : V.VFIO_IRQ_SET_DATA_EVENTFD;
  dv.setUint32(O["vfio_irq_set.flags"], dataFlag | action, true);
  dv.setUint32(O["vfio_irq_set.index"], index, true);
  dv.setUint32(O["vfio_irq_set.start"], start, true);
  dv.setUint32(O["vfio_irq_set.count"], count, true);
  const at = O["vfio_irq_set.data"];
  if (data.kind === "bool") data.values.forEach((v, i) => dv.setUint8(at + i, v ? 1 : 0));
  if (data.kind === "eventfd") data.fds.forEach((fd, i) => dv.setInt32(at + i * 4, fd, true));
  return buf;
}

// ---- type1 IOMMU info and DMA ---------------------------------------------

/** One usable IOVA range [start, end] (inclusive end, as the kernel reports it). */
export interface IovaRange {
  start: bigint;
  end: bigint;
}

/** Decoded `struct vfio_iommu_type1_info` with its capabilities. */
export interface IommuInfo {
  flags: number;
  /** Bitmap of supported IOMMU page sizes (bit n set = 2^n bytes). */
  pageSizes: bigint;
  /** VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, or undefined on kernels without it. */
  iovaRanges: IovaRange[] | undefined;
  /** VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: how many more DMA mappings may be created. */
  dmaAvailable: number | undefined;
  /** VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION (dirty page tracking). */
  migration: { flags: number; pageSizes: bigint; maxDirtyBitmapSize: bigint } | undefined;
  capIds: number[];
}

export function decodeIommuInfo(buf: Uint8Array): IommuInfo {
  const dv = view(buf);
  const flags = dv.getUint32(O["vfio_iommu_type1_info.flags"], true);
  const capOffset = (flags & V.VFIO_IOMMU_INFO_CAPS) !== 0 ? dv.getUint32(O["vfio_iommu_type1_info.cap_offset"], true) : 0;
  const info: IommuInfo = {
    flags,
    pageSizes: (flags & V.VFIO_IOMMU_INFO_PGSIZES) !== 0 ? dv.getBigUint64(O["vfio_iommu_type1_info.iova_pgsizes"], true) : 0n,
    iovaRanges: undefined,
    dmaAvailable: undefined,
    migration: undefined,
    capIds: [],
  };
  for (const cap of walkCapChain(buf, capOffset)) {
    const c = cap.view;
    info.capIds.push(cap.id);
    if (cap.id === V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE && c.byteLength >= SIZEOF.vfio_iommu_type1_info_cap_iova_range) {
      const count = c.getUint32(O["vfio_iommu_type1_info_cap_iova_range.nr_iovas"], true);
      const first = O["vfio_iommu_type1_info_cap_iova_range.iova_ranges"];
      info.iovaRanges = [];
      for (let i = 0; i < count && first + (i + 1) * SIZEOF.vfio_iova_range <= c.byteLength; i++) {
        const at = first + i * SIZEOF.vfio_iova_range;
        info.iovaRanges.push({ start: c.getBigUint64(at, true), end: c.getBigUint64(at + O["vfio_iova_range.end"], true) });
      }
    } else if (cap.id === V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL && c.byteLength >= SIZEOF.vfio_iommu_type1_info_dma_avail) {
      info.dmaAvailable = c.getUint32(O["vfio_iommu_type1_info_dma_avail.avail"], true);
    } else if (cap.id === V.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION && c.byteLength >= SIZEOF.vfio_iommu_type1_info_cap_migration) {
      info.migration = {
        flags: c.getUint32(O["vfio_iommu_type1_info_cap_migration.flags"], true),
        pageSizes: c.getBigUint64(O["vfio_iommu_type1_info_cap_migration.pgsize_bitmap"], true),
        maxDirtyBitmapSize: c.getBigUint64(O["vfio_iommu_type1_info_cap_migration.max_dirty_bitmap_size"], true),
      };
    }
  }
  return info;
}

/** Encodes `struct vfio_iommu_type1_dma_map`. */
export function encodeDmaMap(vaddr: bigint | number, iova: bigint, size: bigint | number, flags: number): Uint8Array {
  const buf = argszBuffer(SIZEOF.vfio_iommu_type1_dma_map);
  const dv = view(buf);
  dv.setUint32(O["vfio_iommu_type1_dma_map.flags"], flags, true);
  setU64(dv, O["vfio_iommu_type1_dma_map.vaddr"], vaddr, "vaddr");
  setU64(dv, O["vfio_iommu_type1_dma_map.iova"], iova, "iova");
  setU64(dv, O["vfio_iommu_type1_dma_map.size"], size, "size");
  return buf;
}

/** Encodes `struct vfio_iommu_type1_dma_unmap` (no dirty bitmap). */
export function encodeDmaUnmap(iova: bigint, size: bigint | number, flags: number): Uint8Array {
  const buf = argszBuffer(SIZEOF.vfio_iommu_type1_dma_unmap);
  const dv = view(buf);
  dv.setUint32(O["vfio_iommu_type1_dma_unmap.flags"], flags, true);
  setU64(dv, O["vfio_iommu_type1_dma_unmap.iova"], iova, "iova");
  setU64(dv, O["vfio_iommu_type1_dma_unmap.size"], size, "size");
  return buf;
}

/** The `size` field of a dma_unmap after the call: how many bytes the kernel unmapped. */
export function decodeDmaUnmapSize(buf: Uint8Array): bigint {
  return view(buf).getBigUint64(O["vfio_iommu_type1_dma_unmap.size"], true);
}

// ---- PCI hot reset --------------------------------------------------------

/** One device affected by a bus/slot reset (`struct vfio_pci_dependent_device`). */
export interface DependentDevice {
  groupId: number;
  /** "dddd:bb:ss.f" */
  bdf: string;
}

export function hotResetInfoBuffer(count: number): Uint8Array {
  return argszBuffer(SIZEOF.vfio_pci_hot_reset_info + count * SIZEOF.vfio_pci_dependent_device);
}

/** The `count` field: how many devices the reset affects (also set on ENOSPC). */
export function hotResetInfoCount(buf: Uint8Array): number {
  return view(buf).getUint32(O["vfio_pci_hot_reset_info.count"], true);
}

export function decodeHotResetInfo(buf: Uint8Array): DependentDevice[] {
  const dv = view(buf);
  const count = hotResetInfoCount(buf);
  const out: DependentDevice[] = [];
  for (let i = 0; i < count; i++) {
    const at = O["vfio_pci_hot_reset_info.devices"] + i * SIZEOF.vfio_pci_dependent_device;
    if (at + SIZEOF.vfio_pci_dependent_device > buf.byteLength) break;
    const segment = dv.getUint16(at + O["vfio_pci_dependent_device.segment"], true);
    const bus = dv.getUint8(at + O["vfio_pci_dependent_device.bus"]);
    const devfn = dv.getUint8(at + O["vfio_pci_dependent_device.devfn"]);
    const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");
    out.push({
      groupId: dv.getUint32(at + O["vfio_pci_dependent_device.group_id"], true),
      bdf: `${hex(segment, 4)}:${hex(bus, 2)}:${hex(devfn >> 3, 2)}.${devfn & 7}`,
    });
  }
  return out;
}

/** Encodes `struct vfio_pci_hot_reset` with the fds of every affected group. */
export function encodeHotReset(groupFds: number[]): Uint8Array {
  const buf = argszBuffer(SIZEOF.vfio_pci_hot_reset + groupFds.length * 4);
  const dv = view(buf);
  dv.setUint32(O["vfio_pci_hot_reset.count"], groupFds.length, true);
  groupFds.forEach((fd, i) => dv.setInt32(O["vfio_pci_hot_reset.group_fds"] + i * 4, fd, true));
  return buf;
}
