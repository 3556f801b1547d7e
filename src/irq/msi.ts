/**
 * MSI of a vfio-pci device (IRQ index 1).
 */
import type { MsiCapability } from "../pci/capabilities.ts";
import { VFIO_PCI_MSI_IRQ_INDEX } from "../uapi/vfio.ts";
import { MsiMaskBits } from "./msi-mask.ts";
import { notMaskable } from "./irq-errors.ts";
import type { IrqPciDevice } from "./port.ts";
import { VectorIndex, type ExclusiveGate, type MaskBits } from "./vector-index.ts";

/**
 * MSI vectors of a device: `device.msi.enable(n)` (n up to the capability's
 * Multiple Message Capable count, at most 32). Masking needs per-vector
 * masking in the MSI capability (vfio-pci offers no SET_IRQS masking for
 * MSI); without it mask() throws a VfioError (EOPNOTSUPP).
 */
export class MsiInterrupts extends VectorIndex {
  /** @internal Created once per device by the irq registry. */
  constructor(dev: IrqPciDevice, gate: ExclusiveGate) {
    super(dev, gate, VFIO_PCI_MSI_IRQ_INDEX, "msi");
  }

  /** The MSI capability from config space (vector count, 64-bit, per-vector masking), or undefined. */
  capability(): MsiCapability | undefined {
    return this.dev.msiCapability();
  }

  protected override get absentHint(): string {
    return "This device has no MSI capability: use device.msix or device.intx.";
  }

  protected override openMaskBits(op: string): MaskBits {
    const cap = this.capability();
    if (!cap) throw notMaskable(op, this.index, this.dev.path, "the device has no MSI capability in config space");
    if (cap.maskOffset === undefined) {
      throw notMaskable(op, this.index, this.dev.path, "vfio-pci has no SET_IRQS masking for MSI and the device's MSI capability lacks per-vector masking");
    }
    return new MsiMaskBits(this.dev, { ...cap, maskOffset: cap.maskOffset });
  }
}
