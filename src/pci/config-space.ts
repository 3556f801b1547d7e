import { invalidArgument } from "../support/errors.ts";

/**
 * PCI configuration space: the standard header, parsed from bytes. Pure: the
 * device layer reads the bytes (through the VFIO config region) and hands
 * them here. Offsets and bits follow include/uapi/linux/pci_regs.h.
 */

/** Offsets of the header registers common to every header type. */
export const PciConfigOffset = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  CLASS_PROG: 0x09,
  CLASS_DEVICE: 0x0a,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  BASE_ADDRESS_0: 0x10,
  CARDBUS_CIS: 0x28,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  ROM_ADDRESS: 0x30,
  CAPABILITY_LIST: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
} as const;

/** Bits of the Command register (offset 0x04). */
export const PciCommand = {
  /** Respond to I/O space accesses. */
  IO: 0x0001,
  /** Respond to memory space accesses (BARs decode). */
  MEMORY: 0x0002,
  /** Allow the device to master the bus, i.e. to DMA. */
  BUS_MASTER: 0x0004,
  /** Disable INTx# assertion. */
  INTX_DISABLE: 0x0400,
} as const;

/** Bits of the Status register (offset 0x06). */
export const PciStatus = {
  /** INTx# is asserted (read-only). */
  INTX_STATUS: 0x0008,
  /** A capability list starts at the capabilities pointer. */
  CAP_LIST: 0x0010,
} as const;

/** Header type field values (bits 0-6 of offset 0x0e). */
export const PciHeaderType = { NORMAL: 0, BRIDGE: 1, CARDBUS: 2 } as const;

/** Size of the conventional config space; bytes beyond it are PCIe extended space. */
export const PCI_CONFIG_SPACE_SIZE = 256;
/** Size of a PCIe config space. */
export const PCIE_CONFIG_SPACE_SIZE = 4096;
/** The header proper; every parser needs at least this much. */
export const PCI_STD_HEADER_SIZE = 64;

/** The standard header of a PCI function. */
export interface PciConfigHeader {
  readonly vendorId: number;
  readonly deviceId: number;
  /** Command register; test with {@link PciCommand}. */
  readonly command: number;
  /** Status register; test with {@link PciStatus}. */
  readonly status: number;
  readonly revision: number;
  /** 24-bit class code: base class << 16 | subclass << 8 | programming interface. */
  readonly classCode: number;
  readonly baseClass: number;
  readonly subclass: number;
  readonly progIf: number;
  readonly cacheLineSize: number;
  readonly latencyTimer: number;
  /** Layout of the rest of the header, bits 0-6 of offset 0x0e: 0 normal, 1 PCI bridge, 2 CardBus. */
  readonly headerType: number;
  /** Bit 7 of offset 0x0e: the device has more than one function. */
  readonly multiFunction: boolean;
  /** Subsystem vendor id (type 0 headers only). */
  readonly subsystemVendorId: number | undefined;
  /** Subsystem id (type 0 headers only). */
  readonly subsystemId: number | undefined;
  /** First capability offset, 0 when the Status register says there is no list. */
  readonly capabilitiesPointer: number;
  readonly interruptLine: number;
  /** 0 for none, 1-4 for INTA#-INTD#. */
  readonly interruptPin: number;
}

/** Reads a byte of config space; bytes past the end read as 0xff, as absent config space does. */
export function configRead8(bytes: Uint8Array, offset: number): number {
  return offset >= 0 && offset < bytes.length ? bytes[offset]! : 0xff;
}

/** Reads a little-endian 16-bit config register. */
export function configRead16(bytes: Uint8Array, offset: number): number {
  return configRead8(bytes, offset) | (configRead8(bytes, offset + 1) << 8);
}

/** Reads a little-endian 32-bit config register as an unsigned number. */
export function configRead32(bytes: Uint8Array, offset: number): number {
  return (configRead16(bytes, offset) | (configRead16(bytes, offset + 2) << 16)) >>> 0;
}

/** Throws EINVAL unless `bytes` hold at least the 64-byte standard header. */
export function requireHeader(op: string, bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array) || bytes.length < PCI_STD_HEADER_SIZE) {
    throw invalidArgument(
      op,
      `config space is ${bytes instanceof Uint8Array ? `${bytes.length} bytes` : "not a Uint8Array"}, the header alone is ${PCI_STD_HEADER_SIZE}`,
      "Pass the whole config space (256 bytes, or 4096 for PCIe), e.g. what VFIO's config region or sysfs `config` returns when read as root.",
    );
  }
}

/**
 * Parses the standard header of a config-space dump. Needs at least 64
 * bytes; throws a `VfioError` with code `EINVAL` otherwise. A vendor id of
 * 0xffff means nothing answered (a removed device or a failed read).
 */
export function parseConfigHeader(bytes: Uint8Array): PciConfigHeader {
  requireHeader("parseConfigHeader", bytes);
  const o = PciConfigOffset;
  const status = configRead16(bytes, o.STATUS);
  const rawType = configRead8(bytes, o.HEADER_TYPE);
  const headerType = rawType & 0x7f;
  const classCode = configRead32(bytes, o.REVISION_ID) >>> 8;
  const normal = headerType === PciHeaderType.NORMAL;
  return {
    vendorId: configRead16(bytes, o.VENDOR_ID),
    deviceId: configRead16(bytes, o.DEVICE_ID),
    command: configRead16(bytes, o.COMMAND),
    status,
    revision: configRead8(bytes, o.REVISION_ID),
    classCode,
    baseClass: classCode >>> 16,
    subclass: (classCode >>> 8) & 0xff,
    progIf: classCode & 0xff,
    cacheLineSize: configRead8(bytes, o.CACHE_LINE_SIZE),
    latencyTimer: configRead8(bytes, o.LATENCY_TIMER),
    headerType,
    multiFunction: (rawType & 0x80) !== 0,
    subsystemVendorId: normal ? configRead16(bytes, o.SUBSYSTEM_VENDOR_ID) : undefined,
    subsystemId: normal ? configRead16(bytes, o.SUBSYSTEM_ID) : undefined,
    capabilitiesPointer: status & PciStatus.CAP_LIST ? configRead8(bytes, capabilityPointerOffset(headerType)) : 0,
    interruptLine: configRead8(bytes, o.INTERRUPT_LINE),
    interruptPin: configRead8(bytes, o.INTERRUPT_PIN),
  };
}

/** Where the capabilities pointer lives: 0x34, except 0x14 in CardBus bridge headers. */
export function capabilityPointerOffset(headerType: number): number {
  return headerType === PciHeaderType.CARDBUS ? 0x14 : PciConfigOffset.CAPABILITY_LIST;
}
