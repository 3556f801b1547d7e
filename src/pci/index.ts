/**
 * Pure PCI config-space parsing (`bun-vfio/pci`): the standard header,
 * capability walks, BARs, MSI and MSI-X layouts. No system calls.
 */
export {
  parseConfigHeader, PciCommand, PciConfigOffset, PciHeaderType, PciStatus,
  PCI_CONFIG_SPACE_SIZE, PCIE_CONFIG_SPACE_SIZE, PCI_STD_HEADER_SIZE, type PciConfigHeader,
} from "./config-space.ts";
export {
  capabilityName, decodeMsi, decodeMsix, extendedCapabilities, findCapability, findExtendedCapability, listCapabilities,
  MSIX_ENTRY_SIZE, msixSizes, PciCapId, PciExtCapId, standardCapabilities,
  type MsiCapability, type MsixCapability, type PciCapability,
} from "./capabilities.ts";
export { barCount, decodeBars, type PciBar } from "./bars.ts";
