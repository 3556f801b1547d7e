/**
 * bun-vfio: drive Linux VFIO devices from Bun through bun:ffi.
 *
 * ```ts
 * import { Container } from "bun-vfio";
 * using container = Container.open();
 * using group = container.addGroup("0000:01:00.0");
 * using dev = group.openPciDevice("0000:01:00.0");
 * ```
 */
export { VfioError } from "./errors.ts";
export { Container, type ContainerOpenOptions, type DmaMapRequest, type IommuType } from "./iommu/container.ts";
export { Group, type DeviceOpenOptions, type GroupOpenOptions } from "./iommu/group.ts";
export { Device } from "./device/device.ts";
export { PciDevice } from "./device/pci-device.ts";
export { Region } from "./device/region.ts";
export { MappedMemory } from "./sys/mmio.ts";
export { pageSize } from "./sys/memory.ts";
export * from "./host/index.ts";
export type { DeviceInfo, GroupStatus, IommuInfo, IovaRange, IrqInfo, RegionInfo, SparseMmapArea, DependentDevice } from "./uapi/structs.ts";
export * as uapi from "./uapi/index.ts";
export { Bar, type BarAccessOptions } from "./device/bar.ts";
export type { BarOptions } from "./device/pci-device.ts";
export * from "./pci/config-space.ts";
export * from "./pci/capabilities.ts";
export * from "./pci/bars.ts";
export * from "./mmap-plan.ts";
export { detectIsolation, parseInterruptChips, dmarInterruptRemapCapable } from "./host/isolation.ts";
export { DmaBuffer, type DmaAccess, type DmaBufferOptions } from "./iommu/dma-buffer.ts";
export { IovaAllocator, DEFAULT_IOVA_RANGES, type IovaAllocatorOptions, type IovaBlock, type IovaRequest } from "./iommu/iova-allocator.ts";
export { dmaSegments, type DmaSegment, type SegmentOptions } from "./iommu/segments.ts";
export { HUGE_PAGES, type HugePageSize } from "./iommu/huge-pages.ts";
export { memlockStatus, memlockHint, type MemlockStatus } from "./iommu/memlock.ts";
export type { DmaOwner } from "./iommu/container.ts";
export {
  MsixInterrupts, MsiInterrupts, IntxInterrupt, ErrorEvents, ReleaseRequests, DeviceEventIndex, VectorIndex, IrqVector, EventFd,
  type IrqKind, type IrqVectors, type IntxEnableOptions, type ReleaseOptions, type ReleaseRequest, type InterruptHandler, type Subscription,
} from "./irq/index.ts";
