/**
 * Host helpers: what sysfs says about PCI devices, IOMMU groups and drivers,
 * and the driver_override dance that hands a device to vfio-pci. Pure file
 * reads and writes; every function takes `{ root }` so it can run on a fake tree.
 */
export { formatBdf, normalizeBdf, parseBdf, type PciAddress } from "./bdf.ts";
export { bindToVfio, releaseFromVfio, type BindOptions, type BindResult, type ReleaseOptions, type ReleaseResult } from "./bind.ts";
export {
  DMA_NEUTRAL_DRIVERS,
  groupDevicePath,
  groupMembers,
  groupViability,
  iommuGroupOf,
  isDmaNeutralDriver,
  isNoiommuGroup,
  type GroupMember,
  type GroupViability,
} from "./groups.ts";
export { listPciDevices, parseResourceFile, pciDeviceInfo, type PciDeviceInfo, type PciResource } from "./pci.ts";
export { lookupPciNames, type PciIdNames, type PciIdQuery } from "./pci-ids.ts";
export type { HostOptions, SysfsWriter } from "./sysfs.ts";
export {
  detectIsolation,
  dmarInterruptRemapCapable,
  parseInterruptChips,
  type IsolationContainerState,
  type IsolationEvidenceSources,
} from "./isolation.ts";
export {
  checkReadiness,
  evaluateDevice,
  evaluateHost,
  mayReadWrite,
  readDeviceFacts,
  readHostFacts,
  TYPICAL_DMA_BYTES,
  type Caller,
  type DeviceFacts,
  type Finding,
  type FindingStatus,
  type HostFacts,
  type NodeAccess,
  type Readiness,
} from "./readiness.ts";
export { hasIommufd, hasVfioCdevs, vfioCdevOf } from "./cdev.ts";
export { deviceUsage, fileHolders, parseDefaultRouteInterfaces, parseMounts, usageReasons, vfioHolders, type DeviceUsage, type FileHolder } from "./in-use.ts";
