/**
 * The two one-vector indexes of vfio-pci that are not device interrupts
 * but kernel events: ERR (index 3, PCIe only: the AER core reports an
 * uncorrectable error on the device) and REQ (index 4: the kernel asks
 * userspace to release the device because it is being unbound or
 * hot-unplugged; the unbind waits until every device fd is closed, and
 * vfio-pci repeats the request every 10 seconds meanwhile).
 */
import { functionArg, optionsArg } from "../support/args.ts";
import { VfioError } from "../support/errors.ts";
import { VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_REQ_IRQ_INDEX } from "../uapi/vfio.ts";
import type { IrqInfo } from "../uapi/structs.ts";
import { alreadyEnabled, indexAbsent, notEnabled, notMaskable } from "./irq-errors.ts";
import type { IrqDevice } from "./port.ts";
import { assignEventfds, disableIndex, triggerVectors } from "./set-irqs.ts";
import { IrqVector, type IrqKind, type VectorControl } from "./vector.ts";
import type { Subscription } from "./waiter.ts";

/** ERR or REQ of one device: `enable()` gives one vector whose wakes are the kernel's events. */
export class DeviceEventIndex {
  protected readonly dev: IrqDevice;
  #vector: IrqVector | undefined;
  /** The vfio-pci IRQ index (3 ERR, 4 REQ). */
  readonly index: number;
  /** `"err"` or `"req"`. */
  readonly kind: IrqKind;
  readonly #absentHint: string;
  readonly #control: VectorControl;

  /** @internal Created once per device by the irq registry. */
  constructor(dev: IrqDevice, index: number, kind: IrqKind, absentHint: string) {
    this.dev = dev;
    this.index = index;
    this.kind = kind;
    this.#absentHint = absentHint;
    const refuseMask = () => {
      throw notMaskable(`${kind}.mask`, index, dev.path, "vfio-pci offers no masking for its ERR and REQ event channels");
    };
    this.#control = { mask: refuseMask, unmask: refuseMask, isMasked: () => false, isPending: () => undefined, trigger: () => this.trigger(), disable: () => this.disable() };
  }

  /** Count (1 where the kernel offers the channel, else 0) and flags. Internally this calls VFIO_DEVICE_GET_IRQ_INFO. */
  info(): IrqInfo {
    return this.dev.irqInfo(this.index);
  }

  /** True while enabled. */
  get enabled(): boolean {
    return this.#vector !== undefined;
  }

  /** The channel's vector while enabled, else undefined. */
  get vector(): IrqVector | undefined {
    return this.#vector;
  }

  /**
   * Registers an eventfd for the channel (VFIO_DEVICE_SET_IRQS,
   * DATA_EVENTFD | ACTION_TRIGGER) and returns its vector. Throws a
   * VfioError when already enabled (EBUSY) or the device lacks the channel
   * (ENODEV).
   */
  enable(): IrqVector {
    const op = `${this.kind}.enable`;
    const info = this.#infoOrAbsent(op);
    if (this.#vector) throw alreadyEnabled(op, this.index, 1, this.dev.path, false);
    if (info.count === 0) throw indexAbsent(op, this.index, this.dev.path, this.#absentHint);
    const vector = new IrqVector(this.kind, 0, `${this.dev.path}#${this.kind}`, this.#control, this.dev.lifetime);
    try {
      assignEventfds(this.dev, this.index, 0, [vector.unsafeFd]);
    } catch (err) {
      vector._close({ op: "interrupt wait", detail: `enabling ${this.kind.toUpperCase()} failed`, hint: "Fix the cause and enable it again." });
      throw err;
    }
    this.#vector = vector;
    return vector;
  }

  /** Signals the channel from software (DATA_NONE | ACTION_TRIGGER), e.g. to test a handler. */
  trigger(): void {
    if (!this.#vector) throw notEnabled(`${this.kind}.trigger`, this.index, this.dev);
    triggerVectors(this.dev, this.index, 0);
  }

  /** Unregisters the eventfd (DATA_NONE | ACTION_TRIGGER, count 0), ends waits (ECLOSED), closes it. Idempotent. */
  disable(): void {
    this.#shutdown(`${this.kind.toUpperCase()} was disabled`, "Enable it again to wait for it.");
  }

  /** @internal Device close. */
  _teardown(): void {
    this.#shutdown("the device was closed", "Open the device again and re-enable its event channels.");
  }

  /** GET_IRQ_INFO refuses ERR with EINVAL on conventional PCI devices: report that as the channel being absent. */
  #infoOrAbsent(op: string): IrqInfo {
    try {
      return this.info();
    } catch (err) {
      if (err instanceof VfioError && err.code === "EINVAL" && err.op === "VFIO_DEVICE_GET_IRQ_INFO") throw indexAbsent(op, this.index, this.dev.path, this.#absentHint);
      throw err;
    }
  }

  #shutdown(detail: string, hint: string): void {
    const vector = this.#vector;
    if (!vector) return;
    try {
      if (!this.dev.closed) disableIndex(this.dev, this.index);
    } finally {
      this.#vector = undefined;
      vector._close({ op: "interrupt wait", detail, hint });
    }
  }
}

/** Options of `device.req.onRelease()`. */
export interface ReleaseOptions {
  /**
   * Close the device after the handler has run (awaited when it returns a
   * promise), so the unbind or unplug that asked can complete. Default false.
   */
  autoRelease?: boolean;
  /** Called with anything the handler throws or rejects with (default: logged with console.error, never an unhandled rejection). */
  onError?: (error: unknown) => void;
}

/** What a release handler receives. */
export interface ReleaseRequest {
  /** Requests coalesced in this wake (the kernel repeats every 10 s until the device is closed). */
  count: number;
}

/**
 * The REQ channel: the kernel asks for the device back. Subscribe with
 * `onRelease(handler, { autoRelease })`, or iterate `enable()`'s vector.
 */
export class ReleaseRequests extends DeviceEventIndex {
  /** @internal Created once per device by the irq registry. */
  constructor(dev: IrqDevice) {
    super(dev, VFIO_PCI_REQ_IRQ_INDEX, "req", "This kernel or device has no request channel (vfio-pci has offered it since Linux 4.0).");
  }

  /**
   * Calls `handler` whenever the kernel asks for the device (unbind,
   * hot-unplug), enabling the channel if needed. With `autoRelease` the
   * device is closed once the handler has finished (or thrown), which lets
   * the unplug complete. Returns the unsubscribe function.
   */
  onRelease(handler?: (request: ReleaseRequest) => void | Promise<void>, options: ReleaseOptions = {}): Subscription {
    const opts = optionsArg("onRelease", options, this.dev.path);
    if (handler !== undefined) functionArg("onRelease", "handler", handler, this.dev.path);
    if (opts.onError !== undefined) functionArg("onRelease", "onError", opts.onError, this.dev.path);
    const vector = this.vector ?? this.enable();
    let releasing = false;
    return vector.on((count) => {
      if (releasing) return;
      releasing = opts.autoRelease === true;
      void this.#handle(handler, count, releasing, opts.onError);
    });
  }

  /** Shorthand for `onRelease(undefined, { autoRelease: true })`: close the device as soon as the kernel asks. */
  autoRelease(): Subscription {
    return this.onRelease(undefined, { autoRelease: true });
  }

  async #handle(handler: ((request: ReleaseRequest) => void | Promise<void>) | undefined, count: number, release: boolean, onError: ((error: unknown) => void) | undefined): Promise<void> {
    const report = (err: unknown) => {
      try {
        if (onError) onError(err);
        else console.error(`bun-vfio: the release handler of ${this.dev.path} failed:`, err);
      } catch {
        // a failing error handler must not become an unhandled rejection either
      }
    };
    try {
      await handler?.({ count });
    } catch (err) {
      report(err);
    }
    // Every open instance of the device must go, or the unplug stays blocked.
    if (release) {
      try {
        this.dev.releaseEverywhere();
      } catch (err) {
        report(err);
      }
    }
  }
}

/** The ERR channel (PCIe only): wakes when the AER core reports an uncorrectable error on the device. */
export class ErrorEvents extends DeviceEventIndex {
  /** @internal Created once per device by the irq registry. */
  constructor(dev: IrqDevice) {
    super(dev, VFIO_PCI_ERR_IRQ_INDEX, "err", "vfio-pci offers the error channel only for PCI Express devices.");
  }
}
