/**
 * Per-vector MSI-X masking through the vector table's Mask bit.
 *
 * vfio-pci does not implement ACTION_MASK/UNMASK for MSI or MSI-X ("XXX Need
 * masking support exported" in vfio_pci_set_irqs_ioctl: ENOTTY, and
 * GET_IRQ_INFO never sets MASKABLE there). pread/pwrite on the table range
 * reach nothing either. But since Linux 4.16 (region capability
 * MSIX_MAPPABLE) the table can be mmapped, and the PCI spec requires every
 * MSI-X function to honour the per-vector Mask bit (Vector Control bit 0):
 * while it is set, the function sets the vector's Pending Bit Array bit
 * instead of sending the message, and sends it when the bit is cleared. That
 * is what this module does; the guest tests show it on QEMU's nvme and
 * e1000e (hw/pci/msix.c msix_handle_mask_update: unmask + pending => notify).
 *
 * Caveats, all handled or documented:
 * - the kernel rewrites Vector Control when it (re)assigns a vector (its irq
 *   startup unmasks), so the owner re-applies masks after every SET_IRQS;
 * - touching the mapping while memory decoding is off raises SIGBUS: the
 *   mapping comes from the device and is gated like every other;
 * - the table is only mapped where the device's mmap plan maps it (never
 *   under policy "strict", never without isolation unless "force");
 * - the table's address/data words are the kernel's (remappable format under
 *   interrupt remapping): only Vector Control is ever written.
 */
import { VfioError } from "../support/errors.ts";
import type { MappedMemory } from "../sys/mmio.ts";
import { MSIX_ENTRY_SIZE, msixSizes, type MsixCapability } from "../pci/capabilities.ts";
import type { IrqPciDevice } from "./port.ts";

const VECTOR_CONTROL = 12;
const MASK_BIT = 1;

/** A page-rounded mapping of `[offset, offset+length)` of a BAR, and where the range starts in it. */
interface Window {
  memory: MappedMemory;
  base: number;
}

/** Mask bits and pending bits of one device's MSI-X table, through mmap. */
export class MsixTable {
  readonly #table: Window;
  readonly #pba: Window;

  private constructor(table: Window, pba: Window) {
    this.#table = table;
    this.#pba = pba;
  }

  /**
   * Maps the pages holding the table and the PBA. Throws a VfioError
   * (EOPNOTSUPP) naming the reason when the kernel does not allow it.
   */
  static open(dev: IrqPciDevice, cap: MsixCapability, op: string): MsixTable {
    const { tableBytes, pbaBytes } = msixSizes(cap);
    const table = window(dev, op, cap.tableBar, cap.tableOffset, tableBytes);
    try {
      return new MsixTable(table, window(dev, op, cap.pbaBar, cap.pbaOffset, pbaBytes));
    } catch (err) {
      table.memory.close();
      throw err;
    }
  }

  /** Sets or clears the vector's Mask bit, then reads it back (flushing the posted write). */
  setMasked(vector: number, masked: boolean, op: string): void {
    const at = this.#table.base + vector * MSIX_ENTRY_SIZE + VECTOR_CONTROL;
    const control = this.#table.memory.read32(at);
    this.#table.memory.write32(at, masked ? control | MASK_BIT : control & ~MASK_BIT);
    this.#table.memory.read32(at);
  }

  /** The vector's Mask bit as the device holds it. */
  isMasked(vector: number, op: string): boolean {
    return (this.#table.memory.read32(this.#table.base + vector * MSIX_ENTRY_SIZE + VECTOR_CONTROL) & MASK_BIT) !== 0;
  }

  /** The vector's Pending Bit Array bit: an interrupt held while masked. */
  isPending(vector: number, op: string): boolean {
    const word = this.#pba.memory.read32(this.#pba.base + 4 * Math.floor(vector / 32));
    return ((word >>> (vector % 32)) & 1) !== 0;
  }

  /** Unmaps both windows. Idempotent. */
  close(): void {
    this.#table.memory.close();
    this.#pba.memory.close();
  }
}

/** The device's mapping of `[offset, offset+length)` of `bar`, or EOPNOTSUPP saying why there is none. */
function window(dev: IrqPciDevice, op: string, bar: number, offset: number, length: number): Window {
  const got = dev.mapMsixWindow(bar, offset, length);
  if (typeof got !== "string") return got;
  throw new VfioError({
    op, code: "EOPNOTSUPP", errno: 95, path: dev.path,
    detail: `MSI-X vectors cannot be masked: vfio-pci has no SET_IRQS masking for MSI-X, and ${got}`,
    hint: "Masking writes the mapped MSI-X table: it needs MSIX_MAPPABLE (Linux 4.16+), isolated MSIs and a policy that maps the table. Otherwise leave the vector unmasked and ignore its wakes.",
  });
}
