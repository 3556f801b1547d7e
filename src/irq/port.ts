/**
 * What the irq layer needs from a device, as structural types. The layer
 * sits below src/device and never imports it: the device owns its
 * interrupts (dev.msix) and satisfies these interfaces.
 */
import type { MsiCapability, MsixCapability } from "../pci/capabilities.ts";
import type { MappedMemory } from "../sys/mmio.ts";
import type { IrqInfo } from "../uapi/structs.ts";

/** A VFIO device as the irq layer sees it (Device satisfies it). */
export interface IrqDevice {
  /** `<group node>:<name>`, used in errors. */
  readonly path: string;
  readonly closed: boolean;
  /** The device fd; throws a VfioError (ECLOSED) after close. */
  readonly unsafeFd: number;
  irqInfo(index: number): IrqInfo;
  close(): void;
  /** Where vectors leave the release of their eventfd and waits, for a device dropped unclosed. */
  readonly lifetime: { adopt(release: () => void): () => void };
  /** Closes this device and every other open instance of it in this process (REQ auto-release). */
  releaseEverywhere(): void;
}

/** A vfio-pci device as the irq layer sees it (PciDevice satisfies it). */
export interface IrqPciDevice extends IrqDevice {
  readonly config: { read16(offset: number): number; read32(offset: number): number; write32(offset: number, value: number): void };
  /**
   * Maps the pages of `bar` holding `[offset, offset+length)` for the MSI-X
   * table's Mask bits, or returns why that is not allowed (the device's mmap
   * policy and MSI isolation decide; the mapping is gated like every other).
   */
  mapMsixWindow(bar: number, offset: number, length: number): { memory: MappedMemory; base: number } | string;
  msixCapability(): MsixCapability | undefined;
  msiCapability(): MsiCapability | undefined;
}

/** vfio-pci IRQ index names, for messages. */
export const IRQ_INDEX_NAMES = ["INTx", "MSI", "MSI-X", "ERR", "REQ"] as const;

/** The name of a vfio-pci IRQ index ("MSI-X"), or "IRQ index N". */
export function irqIndexName(index: number): string {
  return IRQ_INDEX_NAMES[index] ?? `IRQ index ${index}`;
}
