/**
 * The one owner of "may the device's mappings be touched now".
 *
 * vfio-pci revokes (zaps) every BAR mapping while the command register's
 * Memory bit is off or the device is below D0, and faults on access with
 * SIGBUS, which would kill the process. Both states only change through a
 * config-space write or a reset, both of which go through the device
 * object, so the gate caches what it read and looks again after either.
 * (A raw ioctl or pwrite through `unsafeFd` bypasses it: that is the
 * escape hatch's contract.)
 */
import { VfioError } from "../support/errors.ts";
import type { AccessGate } from "../sys/mmio.ts";

const COMMAND = 0x04;
const COMMAND_MEMORY = 0x2;
const PMCSR_STATE_MASK = 0x3;

/** How the gate reads config space (a pread of region 7). */
export interface ConfigReader {
  read16(offset: number): number;
}

/** Memory-decoding and power-state gate of one PCI device's mappings. */
export class DecodeGate implements AccessGate {
  readonly #config: () => ConfigReader;
  #pmcsr: number | undefined;
  readonly #path: string;
  #usable: boolean | undefined;
  #why = "";

  /** `pmcsr`: config offset of the PM capability's control/status register, when the device has one. */
  constructor(config: () => ConfigReader, pmcsr: number | undefined, path: string) {
    this.#config = config;
    this.#pmcsr = pmcsr;
    this.#path = path;
  }

  usable(): boolean {
    return this.#usable ?? this.#look();
  }

  /** Also check the PM capability's control/status register at `offset` (the device has one). */
  watchPowerState(offset: number): void {
    this.#pmcsr = offset;
    this.invalidate();
  }

  /** Forget what was read: the next access reads the command register (and PMCSR) again. */
  invalidate(): void {
    this.#usable = undefined;
  }

  refusal(op: string): VfioError {
    return new VfioError({
      op, code: "EIO", errno: 5, path: this.#path,
      detail: `${this.#why}: vfio-pci has revoked the device's mappings (touching them would raise SIGBUS)`,
      hint: this.#why.startsWith("memory") ? "Call device.enableMemory() first (command register bit 1)." : "Bring the device back to D0 (PMCSR power state 0) before touching its BARs.",
    });
  }

  #look(): boolean {
    const config = this.#config();
    if ((config.read16(COMMAND) & COMMAND_MEMORY) === 0) {
      this.#why = "memory decoding is off (command register bit 1 clear)";
      return (this.#usable = false);
    }
    if (this.#pmcsr !== undefined) {
      const state = config.read16(this.#pmcsr) & PMCSR_STATE_MASK;
      if (state !== 0) {
        this.#why = `the device is in power state D${state}`;
        return (this.#usable = false);
      }
    }
    return (this.#usable = true);
  }
}
