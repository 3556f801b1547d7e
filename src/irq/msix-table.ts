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
 * - touching the mapping while the command register's Memory bit is off
 *   makes vfio-pci's fault handler raise SIGBUS, so every access checks it;
 * - the table's address/data words are the kernel's (remappable format under
 *   interrupt remapping): only Vector Control is ever written.
 */
import { VfioError } from "../errors.ts";
import type { MappedMemory } from "../sys/mmio.ts";
import { pageSize } from "../sys/memory.ts";
import { MSIX_ENTRY_SIZE, msixSizes, type MsixCapability } from "../pci/capabilities.ts";
import type { IrqPciDevice } from "./port.ts";

const VECTOR_CONTROL = 12;
const MASK_BIT = 1;
const COMMAND = 0x04;
const COMMAND_MEMORY = 0x2;

/** A page-rounded mapping of `[offset, offset+length)` of a BAR, and where the range starts in it. */
interface Window {
  memory: MappedMemory;
  base: number;
}

/** Why the table cannot be mapped, or undefined when it can. */
export function tableUnmappableReason(dev: IrqPciDevice, cap: MsixCapability): string | undefined {
  const info = dev.region(cap.tableBar).info;
  if (!info.mmappable) return `BAR ${cap.tableBar} has no VFIO_REGION_INFO_FLAG_MMAP`;
  if (info.msixMappable) return undefined;
  const page = pageSize();
  const start = Math.floor(cap.tableOffset / page) * page;
  const end = Math.ceil((cap.tableOffset + msixSizes(cap).tableBytes) / page) * page;
  const covered = info.sparseAreas?.some((a) => a.offset <= start && a.offset + a.size >= end) ?? false;
  return covered ? undefined : `the kernel does not let userspace map the MSI-X table (no VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: Linux before 4.16)`;
}

/** Mask bits and pending bits of one device's MSI-X table, through mmap. */
export class MsixTable {
  readonly #dev: IrqPciDevice;
  readonly #table: Window;
  readonly #pba: Window;

  private constructor(dev: IrqPciDevice, table: Window, pba: Window) {
    this.#dev = dev;
    this.#table = table;
    this.#pba = pba;
  }

  /**
   * Maps the pages holding the table and the PBA. Throws a VfioError
   * (ENOTSUP) naming the reason when the kernel does not allow it.
   */
  static open(dev: IrqPciDevice, cap: MsixCapability, op: string): MsixTable {
    const reason = tableUnmappableReason(dev, cap);
    if (reason) {
      throw new VfioError({
        op, code: "ENOTSUP", errno: 95, path: dev.path,
        detail: `MSI-X vectors cannot be masked: vfio-pci has no SET_IRQS masking for MSI-X, and ${reason}`,
        hint: "Use a kernel with MSIX_MAPPABLE (4.16+) and interrupt remapping, or leave the vector unmasked and ignore its wakes.",
      });
    }
    const { tableBytes, pbaBytes } = msixSizes(cap);
    const table = mapWindow(dev, cap.tableBar, cap.tableOffset, tableBytes);
    try {
      return new MsixTable(dev, table, mapWindow(dev, cap.pbaBar, cap.pbaOffset, pbaBytes));
    } catch (err) {
      table.memory.unmap();
      throw err;
    }
  }

  /** Sets or clears the vector's Mask bit, then reads it back (flushing the posted write). */
  setMasked(vector: number, masked: boolean, op: string): void {
    this.#requireMemory(op);
    const at = this.#table.base + vector * MSIX_ENTRY_SIZE + VECTOR_CONTROL;
    const control = this.#table.memory.read32(at);
    this.#table.memory.write32(at, masked ? control | MASK_BIT : control & ~MASK_BIT);
    this.#table.memory.read32(at);
  }

  /** The vector's Mask bit as the device holds it. */
  isMasked(vector: number, op: string): boolean {
    this.#requireMemory(op);
    return (this.#table.memory.read32(this.#table.base + vector * MSIX_ENTRY_SIZE + VECTOR_CONTROL) & MASK_BIT) !== 0;
  }

  /** The vector's Pending Bit Array bit: an interrupt held while masked. */
  isPending(vector: number, op: string): boolean {
    this.#requireMemory(op);
    const word = this.#pba.memory.read32(this.#pba.base + 4 * Math.floor(vector / 32));
    return ((word >>> (vector % 32)) & 1) !== 0;
  }

  /** Unmaps both windows. Idempotent. */
  close(): void {
    this.#table.memory.unmap();
    this.#pba.memory.unmap();
  }

  #requireMemory(op: string): void {
    if ((this.#dev.config.read16(COMMAND) & COMMAND_MEMORY) === 0) {
      throw new VfioError({
        op, code: "EIO", errno: 5, path: this.#dev.path,
        detail: "memory decoding is off (command register bit 1), so the MSI-X table is unreachable (touching it would raise SIGBUS)",
        hint: "Call device.enableMemory() first.",
      });
    }
  }
}

/** Maps the pages of `bar` holding `[offset, offset+length)`. */
function mapWindow(dev: IrqPciDevice, bar: number, offset: number, length: number): Window {
  const page = pageSize();
  const start = Math.floor(offset / page) * page;
  const end = Math.ceil((offset + length) / page) * page;
  return { memory: dev.region(bar).map({ offset: start, length: end - start }), base: offset - start };
}
