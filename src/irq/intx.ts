/**
 * The legacy INTx line of a vfio-pci device (IRQ index 0).
 *
 * INTx is level-triggered and shared, so vfio-pci masks it as each interrupt
 * arrives (AUTOMASKED): the driver services the device (clears the cause),
 * then calls unmask() to hear the next one. vfio-pci can also unmask on an
 * eventfd signal ("resample"), registered with ACTION_UNMASK | DATA_EVENTFD,
 * for consumers that only hold file descriptors (a VMM's irqfd, another
 * process).
 */
import { VFIO_PCI_INTX_IRQ_INDEX as INTX } from "../uapi/vfio.ts";
import type { IrqInfo } from "../uapi/structs.ts";
import { alreadyEnabled, indexAbsent, notEnabled } from "./irq-errors.ts";
import { EventFd } from "./eventfd.ts";
import type { IrqPciDevice } from "./port.ts";
import { assignEventfds, disableIndex, maskVectors, setUnmaskEventfd, triggerVectors } from "./set-irqs.ts";
import { IrqVector, type VectorControl } from "./vector.ts";
import type { ExclusiveGate } from "./vector-index.ts";

/** Options of `device.intx.enable()`. */
export interface IntxEnableOptions {
  /**
   * Also register an unmask ("resample") eventfd: signalling it, from this
   * process or any holder of `unmaskFd`, unmasks the line, and unmask() uses it.
   */
  unmaskEventfd?: boolean;
}

/**
 * The INTx line of a device: `device.intx.enable()` gives one vector. After
 * each wake the kernel has masked the line; clear the device's interrupt
 * cause, then `unmask()` (or `vector.unmask()`).
 */
export class IntxInterrupt {
  readonly #dev: IrqPciDevice;
  readonly #gate: ExclusiveGate;
  #vector: IrqVector | undefined;
  #unmaskFd: EventFd | undefined;
  #masked = false;
  /** The vfio-pci IRQ index (0). */
  readonly index = INTX;
  readonly #control: VectorControl = {
    mask: () => this.mask(),
    unmask: () => this.unmask(),
    isMasked: () => this.#masked,
    isPending: () => undefined,
    trigger: () => this.trigger(),
    disable: () => this.disable(),
  };

  /** @internal Created once per device by the irq registry. */
  constructor(dev: IrqPciDevice, gate: ExclusiveGate) {
    this.#dev = dev;
    this.#gate = gate;
  }

  /** Count (1 when the device has an interrupt pin, else 0) and flags (MASKABLE, AUTOMASKED). Internally this calls VFIO_DEVICE_GET_IRQ_INFO. */
  info(): IrqInfo {
    return this.#dev.irqInfo(INTX);
  }

  /** True while enabled. */
  get enabled(): boolean {
    return this.#vector !== undefined;
  }

  /** The line's vector while enabled, else undefined. */
  get vector(): IrqVector | undefined {
    return this.#vector;
  }

  /** The unmask eventfd while registered (escape hatch: signal it from anywhere to unmask). */
  get unmaskFd(): number | undefined {
    return this.#unmaskFd?.fd;
  }

  /**
   * Enables the line with an eventfd. Internally this calls
   * VFIO_DEVICE_SET_IRQS (DATA_EVENTFD | ACTION_TRIGGER), and with
   * `unmaskEventfd` again with DATA_EVENTFD | ACTION_UNMASK. Throws a
   * VfioError when already enabled or MSI/MSI-X is (EBUSY), or the device
   * has no interrupt pin (ENODEV).
   */
  enable(options: IntxEnableOptions = {}): IrqVector {
    const op = "intx.enable";
    const info = this.info();
    if (this.#vector) throw alreadyEnabled(op, INTX, 1, this.#dev.path, false);
    if (info.count === 0) throw indexAbsent(op, INTX, this.#dev.path, "The device has no interrupt pin (or vfio-pci runs with nointxmask/nointx): use device.msi or device.msix.");
    this.#gate.claim(INTX, op);
    const vector = new IrqVector("intx", 0, `${this.#dev.path}#intx`, this.#control, this.#dev.lifetime);
    let unmaskFd: EventFd | undefined;
    try {
      assignEventfds(this.#dev, INTX, 0, [vector.unsafeFd]);
      if (options.unmaskEventfd) {
        unmaskFd = new EventFd(`${this.#dev.path}#intx-unmask`);
        setUnmaskEventfd(this.#dev, INTX, unmaskFd.fd);
      }
    } catch (err) {
      unmaskFd?.close();
      vector._close({ op: "interrupt wait", detail: "enabling INTx failed", hint: "Fix the cause and enable INTx again." });
      try {
        if (!this.#dev.closed) disableIndex(this.#dev, INTX);
      } catch { /* it was not enabled */ }
      this.#gate.release(INTX);
      throw err;
    }
    this.#vector = vector;
    this.#unmaskFd = unmaskFd;
    this.#masked = false;
    return vector;
  }

  /** Masks the line (VFIO_DEVICE_SET_IRQS, DATA_NONE | ACTION_MASK). */
  mask(): void {
    this.#require("intx.mask");
    maskVectors(this.#dev, INTX, 0, 1, true);
    this.#masked = true;
  }

  /**
   * Unmasks the line, after each interrupt and after mask(): through the
   * unmask eventfd when registered (one write(2)), else
   * VFIO_DEVICE_SET_IRQS (DATA_NONE | ACTION_UNMASK). If the device still
   * asserts the line, the next wake follows at once.
   */
  unmask(): void {
    this.#require("intx.unmask");
    if (this.#unmaskFd) this.#unmaskFd.signal();
    else maskVectors(this.#dev, INTX, 0, 1, false);
    this.#masked = false;
  }

  /** Signals the line's eventfd from software (DATA_NONE | ACTION_TRIGGER). */
  trigger(): void {
    this.#require("intx.trigger");
    triggerVectors(this.#dev, INTX, 0);
  }

  /**
   * Turns INTx off (VFIO_DEVICE_SET_IRQS, DATA_NONE | ACTION_TRIGGER, count
   * 0; the kernel drops the unmask eventfd with it), ends waits (ECLOSED)
   * and closes the eventfds. Idempotent.
   */
  disable(): void {
    this.#shutdown("INTx was disabled", "Enable INTx again to wait for it.");
  }

  /** @internal Device close. */
  _teardown(): void {
    this.#shutdown("the device was closed", "Open the device again and re-enable its interrupts.");
  }

  #shutdown(detail: string, hint: string): void {
    const vector = this.#vector;
    if (!vector) return;
    try {
      if (!this.#dev.closed) disableIndex(this.#dev, INTX);
    } finally {
      this.#vector = undefined;
      this.#unmaskFd?.close();
      this.#unmaskFd = undefined;
      this.#gate.release(INTX);
      vector._close({ op: "interrupt wait", detail, hint });
    }
  }

  #require(op: string): void {
    if (!this.#vector) throw notEnabled(op, INTX, this.#dev);
  }
}
