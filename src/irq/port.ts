/**
 * What the irq layer needs from a device, as structural types: the layer
 * never imports src/device at runtime (Device exposes the irq API through
 * getters, so a runtime import back would be a cycle).
 */
import type { MsiCapability, MsixCapability } from "../pci/capabilities.ts";
import type { Region } from "../device/region.ts";
import type { IrqInfo } from "../uapi/structs.ts";

/** A VFIO device as the irq layer sees it (Device satisfies it). */
export interface IrqDevice {
  /** `<group node>:<name>`, used in errors. */
  readonly path: string;
  readonly closed: boolean;
  /** The device fd; throws a VfioError (ECLOSED) after close. */
  readonly unsafeFd: number;
  irqInfo(index: number): IrqInfo;
  onClose(hook: () => void): void;
  close(): void;
}

/** A vfio-pci device as the irq layer sees it (PciDevice satisfies it). */
export interface IrqPciDevice extends IrqDevice {
  readonly config: Region;
  region(index: number): Region;
  msixCapability(): MsixCapability | undefined;
  msiCapability(): MsiCapability | undefined;
}

/** vfio-pci IRQ index names, for messages. */
export const IRQ_INDEX_NAMES = ["INTx", "MSI", "MSI-X", "ERR", "REQ"] as const;

/** The name of a vfio-pci IRQ index ("MSI-X"), or "IRQ index N". */
export function irqIndexName(index: number): string {
  return IRQ_INDEX_NAMES[index] ?? `IRQ index ${index}`;
}
