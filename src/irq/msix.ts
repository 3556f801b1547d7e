/**
 * MSI-X of a vfio-pci device (IRQ index 2).
 */
import type { MsixCapability } from "../pci/capabilities.ts";
import { VFIO_PCI_MSIX_IRQ_INDEX } from "../uapi/vfio.ts";
import { MsixTable } from "./msix-table.ts";
import { notMaskable } from "./irq-errors.ts";
import type { IrqPciDevice } from "./port.ts";
import { VectorIndex, type ExclusiveGate, type MaskBits } from "./vector-index.ts";

/**
 * MSI-X vectors of a device: `device.msix.enable(n)` gives `n` vectors, each
 * an async iterable of interrupt counts. Vectors are configured only through
 * VFIO_DEVICE_SET_IRQS (the kernel writes the table's address and data);
 * masking sets the vector's Mask bit in the mmapped table because vfio-pci
 * offers no SET_IRQS masking for MSI-X.
 */
export class MsixInterrupts extends VectorIndex {
  /** @internal Created once per device by the irq registry. */
  constructor(dev: IrqPciDevice, gate: ExclusiveGate) {
    super(dev, gate, VFIO_PCI_MSIX_IRQ_INDEX, "msix");
  }

  /** The MSI-X capability from config space (vector count, table and PBA location, function mask), or undefined. */
  capability(): MsixCapability | undefined {
    return this.dev.msixCapability();
  }

  /**
   * True when vectors can be added without disturbing the enabled ones:
   * VFIO_DEVICE_GET_IRQ_INFO lacks NORESIZE (dynamic MSI-X, Linux 6.5+ with
   * an interrupt domain that supports it).
   */
  get dynamic(): boolean {
    return !this.info().noresize;
  }

  protected override get absentHint(): string {
    return "This device has no MSI-X capability: use device.msi or device.intx.";
  }

  protected override openMaskBits(op: string): MaskBits {
    const cap = this.capability();
    if (!cap) throw notMaskable(op, this.index, this.dev.path, "the device has no MSI-X capability in config space");
    return tableMaskBits(this.dev, cap, op);
  }
}

function tableMaskBits(dev: IrqPciDevice, cap: MsixCapability, op: string): MaskBits {
  const table = MsixTable.open(dev, cap, op);
  return {
    setMasked: (v, masked, at) => table.setMasked(v, masked, at),
    isPending: (v, at) => table.isPending(v, at),
    close: () => table.close(),
  };
}
