import { capabilityPointerOffset, configRead16, configRead32, configRead8, PCI_CONFIG_SPACE_SIZE, PciConfigOffset, PciStatus, requireHeader } from "./config-space.ts";

/** Standard capability ids (PCI_CAP_ID_* in include/uapi/linux/pci_regs.h). */
export const PciCapId = {
  PM: 0x01,
  AGP: 0x02,
  VPD: 0x03,
  SLOTID: 0x04,
  MSI: 0x05,
  CHSWP: 0x06,
  PCIX: 0x07,
  HT: 0x08,
  VNDR: 0x09,
  DBG: 0x0a,
  CCRC: 0x0b,
  SHPC: 0x0c,
  SSVID: 0x0d,
  AGP3: 0x0e,
  SECDEV: 0x0f,
  EXP: 0x10,
  MSIX: 0x11,
  SATA: 0x12,
  AF: 0x13,
  EA: 0x14,
  FPB: 0x15,
} as const;

/** Extended (PCIe) capability ids (PCI_EXT_CAP_ID_* in include/uapi/linux/pci_regs.h). */
export const PciExtCapId = {
  ERR: 0x01,
  VC: 0x02,
  DSN: 0x03,
  PWR: 0x04,
  RCLD: 0x05,
  RCILC: 0x06,
  RCEC: 0x07,
  MFVC: 0x08,
  VC9: 0x09,
  RCRB: 0x0a,
  VNDR: 0x0b,
  CAC: 0x0c,
  ACS: 0x0d,
  ARI: 0x0e,
  ATS: 0x0f,
  SRIOV: 0x10,
  MRIOV: 0x11,
  MCAST: 0x12,
  PRI: 0x13,
  REBAR: 0x15,
  DPA: 0x16,
  TPH: 0x17,
  LTR: 0x18,
  SECPCI: 0x19,
  PMUX: 0x1a,
  PASID: 0x1b,
  DPC: 0x1d,
  L1SS: 0x1e,
  PTM: 0x1f,
  DVSEC: 0x23,
  VF_REBAR: 0x24,
  DLF: 0x25,
  PL_16GT: 0x26,
  NPEM: 0x29,
  PL_32GT: 0x2a,
  DOE: 0x2e,
  IDE: 0x30,
  PL_64GT: 0x31,
} as const;

const STANDARD_NAMES: Record<number, string> = {
  0x01: "Power Management",
  0x02: "AGP",
  0x03: "Vital Product Data",
  0x04: "Slot Identification",
  0x05: "MSI",
  0x06: "CompactPCI Hot Swap",
  0x07: "PCI-X",
  0x08: "HyperTransport",
  0x09: "Vendor-Specific",
  0x0a: "Debug Port",
  0x0b: "CompactPCI Central Resource Control",
  0x0c: "PCI Standard Hot-Plug Controller",
  0x0d: "Bridge Subsystem Vendor ID",
  0x0e: "AGP 8x",
  0x0f: "Secure Device",
  0x10: "PCI Express",
  0x11: "MSI-X",
  0x12: "SATA Configuration",
  0x13: "Advanced Features",
  0x14: "Enhanced Allocation",
  0x15: "Flattening Portal Bridge",
};

const EXTENDED_NAMES: Record<number, string> = {
  0x01: "Advanced Error Reporting",
  0x02: "Virtual Channel",
  0x03: "Device Serial Number",
  0x04: "Power Budgeting",
  0x05: "Root Complex Link Declaration",
  0x06: "Root Complex Internal Link Control",
  0x07: "Root Complex Event Collector Endpoint Association",
  0x08: "Multi-Function Virtual Channel",
  0x09: "Virtual Channel (MFVC present)",
  0x0a: "Root Complex Register Block",
  0x0b: "Vendor-Specific Extended",
  0x0c: "Config Access Correlation",
  0x0d: "Access Control Services",
  0x0e: "Alternative Routing-ID Interpretation",
  0x0f: "Address Translation Services",
  0x10: "SR-IOV",
  0x11: "MR-IOV",
  0x12: "Multicast",
  0x13: "Page Request Interface",
  0x15: "Resizable BAR",
  0x16: "Dynamic Power Allocation",
  0x17: "TPH Requester",
  0x18: "Latency Tolerance Reporting",
  0x19: "Secondary PCI Express",
  0x1a: "Protocol Multiplexing",
  0x1b: "Process Address Space ID",
  0x1d: "Downstream Port Containment",
  0x1e: "L1 PM Substates",
  0x1f: "Precision Time Measurement",
  0x23: "Designated Vendor-Specific",
  0x24: "VF Resizable BAR",
  0x25: "Data Link Feature",
  0x26: "Physical Layer 16.0 GT/s",
  0x27: "Lane Margining at the Receiver",
  0x29: "Native PCIe Enclosure Management",
  0x2a: "Physical Layer 32.0 GT/s",
  0x2e: "Data Object Exchange",
  0x30: "Integrity and Data Encryption",
  0x31: "Physical Layer 64.0 GT/s",
};

/** One entry of a capability list. */
export interface PciCapability {
  /** `"standard"` for the list at 0x34, `"extended"` for the PCIe list at 0x100. */
  readonly kind: "standard" | "extended";
  readonly id: number;
  /** Byte offset of the capability header in config space. */
  readonly offset: number;
  /** Human-readable name, or `"Unknown (0x..)"`. */
  readonly name: string;
  /** Capability version (extended capabilities only). */
  readonly version?: number;
}

/** The kernel's bound on the standard list (PCI_FIND_CAP_TTL): 48 entries fit in 192 bytes. */
const STANDARD_TTL = 48;
/** The kernel's bound on the extended list: (4096 - 256) / 8 entries. */
const EXTENDED_TTL = (4096 - PCI_CONFIG_SPACE_SIZE) / 8;
/** Capabilities may not live in the 64-byte header. */
const FIRST_CAPABILITY_OFFSET = 0x40;

const unknownName = (id: number) => `Unknown (0x${id.toString(16).padStart(2, "0")})`;

/**
 * Walks the standard capability list the way the kernel does
 * (`__pci_find_next_cap_ttl`): only when Status has CAP_LIST, pointers below
 * 0x40 end the list, the low two pointer bits are ignored, id 0xff ends it,
 * and at most 48 entries are read. It also stops on a pointer seen before
 * (a cycle) or one past the bytes given, so corrupted config space can
 * never loop. Throws EINVAL for less than the 64-byte header.
 */
export function standardCapabilities(bytes: Uint8Array): PciCapability[] {
  requireHeader("standardCapabilities", bytes);
  if (!(configRead16(bytes, PciConfigOffset.STATUS) & PciStatus.CAP_LIST)) return [];
  const headerType = configRead8(bytes, PciConfigOffset.HEADER_TYPE) & 0x7f;
  const end = Math.min(bytes.length, PCI_CONFIG_SPACE_SIZE);
  const found: PciCapability[] = [];
  const seen = new Set<number>();
  let pointer = configRead8(bytes, capabilityPointerOffset(headerType));
  for (let ttl = STANDARD_TTL; ttl > 0; ttl--) {
    if (pointer < FIRST_CAPABILITY_OFFSET) break;
    const offset = pointer & ~3;
    if (offset + 1 >= end || seen.has(offset)) break;
    seen.add(offset);
    const id = bytes[offset]!;
    if (id === 0xff) break;
    found.push({ kind: "standard", id, offset, name: STANDARD_NAMES[id] ?? unknownName(id) });
    pointer = bytes[offset + 1]!;
  }
  return found;
}

/**
 * Walks the PCIe extended capability list from 0x100 the way the kernel does
 * (`pci_find_next_ext_capability`): a header of 0 (or all ones, nothing
 * answering) means none, a next pointer below 0x100 ends the list, and at
 * most 480 entries are read; a repeated offset (a cycle) or one past the
 * bytes given also ends it. Entries with id 0 (placeholders some devices
 * use to skip space) are followed but not listed. Returns `[]` for a
 * 256-byte (conventional PCI) dump.
 */
export function extendedCapabilities(bytes: Uint8Array): PciCapability[] {
  requireHeader("extendedCapabilities", bytes);
  const found: PciCapability[] = [];
  const seen = new Set<number>();
  let offset = PCI_CONFIG_SPACE_SIZE;
  for (let ttl = EXTENDED_TTL; ttl > 0; ttl--) {
    if (offset + 4 > bytes.length || seen.has(offset)) break;
    seen.add(offset);
    const header = configRead32(bytes, offset);
    if (header === 0 || header === 0xffffffff) break;
    const id = header & 0xffff;
    if (id !== 0) found.push({ kind: "extended", id, offset, name: EXTENDED_NAMES[id] ?? unknownName(id), version: (header >>> 16) & 0xf });
    const next = (header >>> 20) & 0xffc;
    if (next < PCI_CONFIG_SPACE_SIZE) break;
    offset = next;
  }
  return found;
}

/** Both lists, standard first. */
export function listCapabilities(bytes: Uint8Array): PciCapability[] {
  return [...standardCapabilities(bytes), ...extendedCapabilities(bytes)];
}

/** The first standard capability with this id (see {@link PciCapId}), or `undefined`. */
export function findCapability(bytes: Uint8Array, id: number): PciCapability | undefined {
  return standardCapabilities(bytes).find((cap) => cap.id === id);
}

/** The first extended capability with this id (see {@link PciExtCapId}), or `undefined`. */
export function findExtendedCapability(bytes: Uint8Array, id: number): PciCapability | undefined {
  return extendedCapabilities(bytes).find((cap) => cap.id === id);
}

/** Name of a standard (`extended` false) or extended capability id. */
export function capabilityName(id: number, extended = false): string {
  return (extended ? EXTENDED_NAMES : STANDARD_NAMES)[id] ?? unknownName(id);
}

/** The MSI-X capability (PCI_MSIX_* in pci_regs.h): where the vector table and PBA live. */
export interface MsixCapability {
  /** Offset of the capability in config space. */
  readonly offset: number;
  /** Number of vectors: Message Control bits 0-10, plus one. */
  readonly tableSize: number;
  readonly enabled: boolean;
  /** Function Mask: every vector is masked regardless of its own mask bit. */
  readonly functionMasked: boolean;
  /** BAR index (BIR) holding the table; values 6 and 7 are reserved and mean a broken device. */
  readonly tableBar: number;
  /** Byte offset of the table inside that BAR (8-byte aligned). */
  readonly tableOffset: number;
  /** BAR index holding the Pending Bit Array. */
  readonly pbaBar: number;
  /** Byte offset of the PBA inside that BAR. */
  readonly pbaOffset: number;
}

/**
 * Decodes the MSI-X capability at `offset`, or finds it when `offset` is
 * omitted; returns `undefined` when the device has none.
 */
export function decodeMsix(bytes: Uint8Array, offset?: number): MsixCapability | undefined {
  const at = offset ?? findCapability(bytes, PciCapId.MSIX)?.offset;
  if (at === undefined) return undefined;
  const control = configRead16(bytes, at + 2);
  const table = configRead32(bytes, at + 4);
  const pba = configRead32(bytes, at + 8);
  return {
    offset: at,
    tableSize: (control & 0x07ff) + 1,
    enabled: (control & 0x8000) !== 0,
    functionMasked: (control & 0x4000) !== 0,
    tableBar: table & 0x7,
    tableOffset: (table & ~0x7) >>> 0,
    pbaBar: pba & 0x7,
    pbaOffset: (pba & ~0x7) >>> 0,
  };
}

/** Bytes of one MSI-X table entry: address low, address high, data, vector control. */
export const MSIX_ENTRY_SIZE = 16;

/** Byte sizes of the MSI-X table (16 per vector) and PBA (one bit per vector, in 8-byte words). */
export function msixSizes(cap: Pick<MsixCapability, "tableSize">): { tableBytes: number; pbaBytes: number } {
  return { tableBytes: MSIX_ENTRY_SIZE * cap.tableSize, pbaBytes: 8 * Math.ceil(cap.tableSize / 64) };
}

/** The MSI capability (PCI_MSI_* in pci_regs.h). */
export interface MsiCapability {
  /** Offset of the capability in config space. */
  readonly offset: number;
  readonly enabled: boolean;
  /** Vectors the device can use: 1 << Multiple Message Capable (1 to 32). */
  readonly multipleMessageCapable: number;
  /** Vectors software enabled: 1 << Multiple Message Enable. */
  readonly multipleMessageEnabled: number;
  /** The message address has an upper 32-bit half. */
  readonly is64Bit: boolean;
  /** Mask and Pending registers exist. */
  readonly perVectorMasking: boolean;
  /** Offset of Message Data from the capability start: 0x08, or 0x0c when 64-bit. */
  readonly dataOffset: number;
  /** Offset of the Mask Bits register from the capability start, when per-vector masking exists. */
  readonly maskOffset: number | undefined;
}

/**
 * Decodes the MSI capability at `offset`, or finds it when `offset` is
 * omitted; returns `undefined` when the device has none.
 */
export function decodeMsi(bytes: Uint8Array, offset?: number): MsiCapability | undefined {
  const at = offset ?? findCapability(bytes, PciCapId.MSI)?.offset;
  if (at === undefined) return undefined;
  const control = configRead16(bytes, at + 2);
  const is64Bit = (control & 0x0080) !== 0;
  const perVectorMasking = (control & 0x0100) !== 0;
  // Encodings 6 and 7 are reserved; clamp to the 32-vector maximum.
  const vectors = (encoded: number) => 1 << Math.min(encoded, 5);
  return {
    offset: at,
    enabled: (control & 0x0001) !== 0,
    multipleMessageCapable: vectors((control >> 1) & 0x7),
    multipleMessageEnabled: vectors((control >> 4) & 0x7),
    is64Bit,
    perVectorMasking,
    dataOffset: is64Bit ? 0x0c : 0x08,
    maskOffset: perVectorMasking ? (is64Bit ? 0x10 : 0x0c) : undefined,
  };
}
