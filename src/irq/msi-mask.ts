/**
 * Per-vector MSI masking through the MSI capability's Mask Bits register.
 *
 * vfio-pci has no SET_IRQS masking for MSI (ENOTTY), but it passes the Mask
 * Bits and Pending Bits registers straight to the device (vfio_pci_config.c
 * init_pci_cap_msi_perm: NO_VIRT, ALL_WRITE), so a device with per-vector
 * masking (Message Control bit 8) can be masked through config space. Like
 * the MSI-X table, the kernel rewrites these bits when it (re)assigns a
 * vector, so the owner re-applies masks after every SET_IRQS. Devices
 * without per-vector masking (QEMU's edu among them) cannot be masked.
 */
import type { MsiCapability } from "../pci/capabilities.ts";
import type { IrqPciDevice } from "./port.ts";

/** Mask and pending bits of a device's MSI capability, through config space (pread/pwrite). */
export class MsiMaskBits {
  readonly #dev: IrqPciDevice;
  readonly #maskAt: number;

  /** `cap.maskOffset` must be defined (per-vector masking present). */
  constructor(dev: IrqPciDevice, cap: MsiCapability & { maskOffset: number }) {
    this.#dev = dev;
    this.#maskAt = cap.offset + cap.maskOffset;
  }

  /** Sets or clears the vector's Mask bit (read-modify-write of the 32-bit register). */
  setMasked(vector: number, masked: boolean): void {
    const config = this.#dev.config;
    const bits = config.read32(this.#maskAt);
    config.write32(this.#maskAt, masked ? (bits | (1 << vector)) >>> 0 : (bits & ~(1 << vector)) >>> 0);
  }

  /** The vector's Mask bit as the device holds it. */
  isMasked(vector: number): boolean {
    return ((this.#dev.config.read32(this.#maskAt) >>> vector) & 1) !== 0;
  }

  /** The vector's Pending bit (the register after Mask Bits). */
  isPending(vector: number): boolean {
    return ((this.#dev.config.read32(this.#maskAt + 4) >>> vector) & 1) !== 0;
  }

  /** Nothing to release (config space is read through the device fd). */
  close(): void {}
}
