/**
 * Capability decoding in the words `lspci -vv` uses for the capabilities it
 * knows (header line, then detail lines), from config-space bytes.
 */
import { decodeMsi, decodeMsix, extendedCapabilities, standardCapabilities, PciCapId, PciExtCapId, type PciCapability } from "../pci/capabilities.ts";
import { configRead16, configRead32, configRead8 } from "../pci/config-space.ts";
import type { HostOptions } from "../host/sysfs.ts";
import { subsystemName } from "./lspci-names.ts";

/** One decoded capability. */
export interface CapabilityText {
  readonly kind: "standard" | "extended";
  readonly id: number;
  readonly offset: number;
  readonly version: number | undefined;
  /** The library's name for the id. */
  readonly name: string;
  /** What lspci prints after `Capabilities: [40] ` (without the offset). */
  readonly text: string;
  /** Further lines (lspci's indented detail lines) for the fields decoded here. */
  readonly details: readonly string[];
}

const flag = (v: number, bit: number) => (v & bit ? "+" : "-");
const h = (n: number, width: number) => n.toString(16).padStart(width, "0");

const EXPRESS_TYPES: Record<number, string> = {
  0: "Endpoint",
  1: "Legacy Endpoint",
  5: "Upstream Port",
  7: "PCI-Express to PCI/PCI-X Bridge",
  8: "PCI/PCI-X to PCI-Express Bridge",
  9: "Root Complex Integrated Endpoint",
  10: "Root Complex Event Collector",
};

const VIRTIO_TYPES: Record<number, string> = { 1: "CommonCfg", 2: "Notify", 3: "ISR", 4: "DeviceCfg" };

function express(bytes: Uint8Array, at: number): { text: string; details: string[] } {
  const flags = configRead16(bytes, at + 2);
  const type = (flags >> 4) & 0xf;
  const slot = flag(flags, 0x100);
  const name = type === 4 ? `Root Port (Slot${slot})` : type === 6 ? `Downstream Port (Slot${slot})` : EXPRESS_TYPES[type] ?? `Unknown type ${type}`;
  const devcap = configRead32(bytes, at + 4);
  const details = [`DevCap: MaxPayload ${128 << (devcap & 7)} bytes`];
  // pciutils 3.11+ prints the Interrupt Message Number as `IntMsgNum N` (older releases: `MSI 0N` in hex).
  return { text: `Express (v${flags & 0xf}) ${name}, IntMsgNum ${(flags >> 9) & 0x1f}`, details };
}

function standard(bytes: Uint8Array, cap: PciCapability, vendorId: number, deviceId: number, options?: HostOptions): { text: string; details: string[] } {
  const at = cap.offset;
  switch (cap.id) {
    case PciCapId.PM:
      return { text: `Power Management version ${configRead16(bytes, at + 2) & 7}`, details: [] };
    case PciCapId.MSI: {
      const m = decodeMsi(bytes, at)!;
      const control = configRead16(bytes, at + 2);
      return { text: `MSI: Enable${flag(control, 1)} Count=${m.multipleMessageEnabled}/${m.multipleMessageCapable} Maskable${flag(control, 0x100)} 64bit${flag(control, 0x80)}`, details: [] };
    }
    case PciCapId.MSIX: {
      const m = decodeMsix(bytes, at)!;
      const control = configRead16(bytes, at + 2);
      return {
        text: `MSI-X: Enable${flag(control, 0x8000)} Count=${m.tableSize} Masked${flag(control, 0x4000)}`,
        details: [`Vector table: BAR=${m.tableBar} offset=${h(m.tableOffset, 8)}`, `PBA: BAR=${m.pbaBar} offset=${h(m.pbaOffset, 8)}`],
      };
    }
    case PciCapId.EXP:
      return express(bytes, at);
    case PciCapId.VNDR: {
      const len = configRead8(bytes, at + 2);
      if (vendorId === 0x1af4 && deviceId >= 0x1000 && deviceId <= 0x107f && len >= 16) {
        const type = configRead8(bytes, at + 3);
        const bar = configRead8(bytes, at + 4);
        const offset = configRead32(bytes, at + 8);
        const size = configRead32(bytes, at + 12);
        return { text: `Vendor Specific Information: VirtIO: ${VIRTIO_TYPES[type] ?? "<unknown>"}`, details: [`BAR=${bar} offset=${h(offset, 8)} size=${h(size, 8)}`] };
      }
      return { text: `Vendor Specific Information: Len=${h(len, 2)} <?>`, details: [] };
    }
    case PciCapId.SSVID:
      return { text: `Subsystem: ${subsystemName(vendorId, deviceId, configRead16(bytes, at + 4), configRead16(bytes, at + 6), options)}`, details: [] };
    case PciCapId.SHPC:
      return { text: "Hot-plug capable", details: [] };
    case PciCapId.SATA: {
      const ccr = configRead16(bytes, at + 2);
      const bars = configRead32(bytes, at + 4);
      const loc = bars & 0xf;
      const where = loc === 0xf ? " InCfgSpace" : loc >= 4 && loc <= 9 ? ` BAR${loc - 4} Offset=${h((bars >>> 4) & 0xfffff, 8)}` : " BAR??";
      return { text: `SATA HBA v${(ccr >> 4) & 0xf}.${ccr & 0xf}${where}`, details: [] };
    }
    case PciCapId.AF:
      return { text: "PCI Advanced Features", details: [] };
    default:
      return { text: cap.name, details: [] };
  }
}

const EXTENDED_TEXT: Record<number, string> = {
  [PciExtCapId.ERR]: "Advanced Error Reporting",
  [PciExtCapId.ACS]: "Access Control Services",
  [PciExtCapId.ARI]: "Alternative Routing-ID Interpretation (ARI)",
  [PciExtCapId.ATS]: "Address Translation Service (ATS)",
  [PciExtCapId.SRIOV]: "Single Root I/O Virtualization (SR-IOV)",
  [PciExtCapId.LTR]: "Latency Tolerance Reporting",
  [PciExtCapId.L1SS]: "L1 PM Substates",
  [PciExtCapId.PASID]: "Process Address Space ID (PASID)",
  [PciExtCapId.PRI]: "Page Request Interface (PRI)",
};

function extended(bytes: Uint8Array, cap: PciCapability): string {
  if (cap.id === PciExtCapId.DSN) {
    const low = configRead32(bytes, cap.offset + 4);
    const high = configRead32(bytes, cap.offset + 8);
    const serial = h(high, 8) + h(low, 8);
    return `Device Serial Number ${serial.match(/../g)!.join("-")}`;
  }
  return EXTENDED_TEXT[cap.id] ?? cap.name;
}

/**
 * Every capability of a config-space dump (standard list, then the PCIe
 * extended list when the dump has 4096 bytes), each with lspci's header
 * text and the detail lines decoded here.
 */
export function describeCapabilities(bytes: Uint8Array, vendorId: number, deviceId: number, options?: HostOptions): CapabilityText[] {
  const out: CapabilityText[] = [];
  for (const cap of standardCapabilities(bytes)) {
    const { text, details } = standard(bytes, cap, vendorId, deviceId, options);
    out.push({ kind: "standard", id: cap.id, offset: cap.offset, version: undefined, name: cap.name, text, details });
  }
  for (const cap of extendedCapabilities(bytes)) {
    out.push({ kind: "extended", id: cap.id, offset: cap.offset, version: cap.version, name: cap.name, text: extended(bytes, cap), details: [] });
  }
  return out;
}

/** lspci's bracket: `[40]` for standard, `[100 v1]` for extended capabilities. */
export function capabilityBracket(cap: Pick<CapabilityText, "kind" | "offset" | "version">): string {
  return cap.kind === "standard" ? `[${h(cap.offset, 2)}]` : `[${h(cap.offset, 3)} v${cap.version ?? 0}]`;
}
