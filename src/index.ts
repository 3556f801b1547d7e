/**
 * bun-vfio: drive Linux VFIO devices from userspace through the runtime's
 * FFI. The public API, as an explicit list; `bun-vfio/pci` (config-space
 * parsing), `bun-vfio/uapi` (linux/vfio.h) and `bun-vfio/sandbox` (the
 * QEMU guest rig) are subpaths.
 *
 * ```ts
 * import { Container } from "bun-vfio";
 * using container = Container.open();
 * using group = container.addGroup("0000:01:00.0");
 * using dev = group.openPciDevice("0000:01:00.0");
 * ```
 */
// Errors
export { VfioError, type LibraryErrorCode, type VfioErrorCode } from "./support/errors.ts";
export type { ErrnoName } from "./support/errno-names.ts";

// IOMMU backends and DMA
export { Container, type ContainerOpenOptions, type IommuType } from "./iommu/container.ts";
export { Group, type DeviceOpenOptions, type GroupOpenOptions } from "./iommu/group.ts";
export { Iommufd, type IommufdOpenOptions, type IoasRanges } from "./iommu/iommufd.ts";
export { chooseBackend, openVfio, type BackendChoice, type OpenVfioOptions, type VfioBackend, type VfioSpace } from "./iommu/backend.ts";
export { physicalAddresses } from "./iommu/physical.ts";
export type { DmaMapRequest, DmaOwner, DmaSpace } from "./iommu/dma-space.ts";
export { DmaBuffer, type DmaAccess, type DmaBufferOptions } from "./iommu/dma-buffer.ts";
export { IovaAllocator, DEFAULT_IOVA_RANGES, type IovaAllocatorOptions, type IovaBlock, type IovaRequest } from "./iommu/iova-allocator.ts";
export { dmaSegments, type DmaSegment, type SegmentOptions } from "./iommu/segments.ts";
export { HUGE_PAGES, type HugePageSize } from "./iommu/huge-pages.ts";
export { memlockStatus, memlockHint, type MemlockStatus } from "./iommu/memlock.ts";

// Devices
export { Device, type DeviceAttachment, type DeviceHandle } from "./device/device.ts";
export { PciDevice, type BarOptions, type PciDeviceOptions } from "./device/pci-device.ts";
export { Region, type RegionMapOptions } from "./device/region.ts";
export { Bar, type BarAccessOptions } from "./device/bar.ts";
export { MappedMemory } from "./sys/mmio.ts";
export { pageSize } from "./sys/memory.ts";
export { mb, rmb, wmb } from "./sys/barriers.ts";
export type {
  DependentDevice, DeviceInfo, GroupStatus, IommuInfo, IovaRange, IrqInfo, RegionInfo, SparseMmapArea,
} from "./uapi/structs.ts";

// Interrupts
export {
  DeviceEventIndex, ErrorEvents, EventFd, IntxInterrupt, IrqVector, MsiInterrupts, MsixInterrupts, ReleaseRequests, VectorIndex,
  type InterruptHandler, type IntxEnableOptions, type IrqKind, type IrqVectors, type ReleaseRequest, type ReleaseRequestOptions, type Subscription,
} from "./irq/index.ts";

// The mmap decision
export {
  isolationVerdict, planBarMmap,
  type BarRegionInfo, type GuardedRange, type IsolationLevel, type IsolationVerdict, type MmapPlan, type MmapPolicy, type MsixLayout, type PlanRange, type SparseArea,
} from "./mmap-plan/index.ts";

// Host (sysfs and procfs)
export {
  bindToVfio, detectIsolation, hasIommufd, hasVfioCdevs, vfioCdevOf, dmarInterruptRemapCapable, formatBdf, groupDevicePath, groupMembers, groupViability, iommuGroupOf,
  isDmaNeutralDriver, isNoiommuGroup, listPciDevices, lookupPciNames, normalizeBdf, parseBdf, parseInterruptChips, parseResourceFile,
  pciDeviceInfo, releaseFromVfio, DMA_NEUTRAL_DRIVERS,
  type BindOptions, type BindResult, type GroupMember, type GroupViability, type HostOptions, type IsolationContainerState,
  type IsolationEvidenceSources, type PciAddress, type PciDeviceInfo, type PciIdNames, type PciIdQuery, type PciResource,
  type ReleaseOptions, type ReleaseResult, type SysfsWriter,
  checkReadiness, deviceUsage, evaluateDevice, evaluateHost, readDeviceFacts, readHostFacts, TYPICAL_DMA_BYTES, vfioHolders,
  type DeviceFacts, type DeviceUsage, type FileHolder, type Finding, type FindingStatus, type HostFacts, type Readiness,
} from "./host/index.ts";

// Config-space parsing (also `bun-vfio/pci`)
export * from "./pci/index.ts";

// Runtime seam (for tests and embedders: a fake kernel, another runtime)
export { useSys } from "./sys/runtime.ts";
export type { Barrier, ByteStream, MemoryView, MmapResult, OrderedAccess, Pointer, Sys } from "./sys/types.ts";

// linux/vfio.h constants and codecs (also `bun-vfio/uapi`)
export * as uapi from "./uapi/index.ts";
