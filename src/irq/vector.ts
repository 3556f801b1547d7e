/**
 * One interrupt vector: an eventfd the kernel signals, the ways to wait on
 * it, and the per-vector controls its index offers (mask, trigger).
 */
import { EventFd } from "./eventfd.ts";
import { EventWaiter, type CloseReason, type InterruptHandler, type Subscription } from "./waiter.ts";

/** Which vfio-pci IRQ index a vector belongs to. */
export type IrqKind = "intx" | "msi" | "msix" | "err" | "req";

/** What a vector asks of the index that owns it. */
export interface VectorControl {
  mask(vector: number): void;
  unmask(vector: number): void;
  isMasked(vector: number): boolean;
  isPending(vector: number): boolean | undefined;
  trigger(vector: number): void;
  /** Turns the whole index off. */
  disable(): void;
}

/**
 * One vector of an interrupt index (MSI-X vector 3, the INTx line, the REQ
 * channel...). Wait for it with `await v.next()`, `for await (const n of v)`,
 * `v.on(n => ...)`, or poll it with `v.tryRead()`; each gives the number of
 * interrupts coalesced since the previous read. Obtained from
 * `device.msix.enable(n)` and its siblings; closed by `disable()` or by
 * closing the device, after which waits reject with a VfioError (ECLOSED).
 */
export class IrqVector implements AsyncIterable<number>, Disposable {
  readonly #eventfd: EventFd;
  readonly #waiter: EventWaiter;
  readonly #control: VectorControl;
  readonly #forget: () => void;
  /** The index kind: `"msix"`, `"msi"`, `"intx"`, `"err"` or `"req"`. */
  readonly kind: IrqKind;
  /** The vector number inside its index (0 for INTx, ERR, REQ). */
  readonly vector: number;

  /** @internal Created by the index objects, with an eventfd of their own. */
  constructor(kind: IrqKind, vector: number, label: string, control: VectorControl, lifetime: { adopt(release: () => void): () => void }) {
    this.kind = kind;
    this.vector = vector;
    this.#control = control;
    this.#eventfd = new EventFd(label);
    this.#waiter = new EventWaiter(this.#eventfd);
    this.#forget = lifetime.adopt(releaser(this.#waiter, this.#eventfd));
  }

  /** The eventfd (escape hatch: hand it to another consumer, or write to it in tests). Throws after close. */
  get unsafeFd(): number {
    return this.#eventfd.fd;
  }

  /** `<device path>#<kind>[<vector>]`, used in errors. */
  get label(): string {
    return this.#eventfd.label;
  }

  /** True once the vector's index was disabled or its device closed. */
  get closed(): boolean {
    return this.#waiter.closed;
  }

  /** Waits pending in `next()` (for tests and diagnostics). */
  get waiting(): number {
    return this.#waiter.waiting;
  }

  /**
   * Resolves with the interrupts coalesced since the previous read (>= 1),
   * without blocking the event loop. Rejects with a VfioError (ECLOSED) when
   * the vector is disabled or the device closed while waiting.
   */
  next(): Promise<number> {
    return this.#waiter.next();
  }

  /** The interrupts coalesced since the previous read, or 0; never waits (one read(2)). */
  tryRead(): number {
    return this.#waiter.tryRead();
  }

  /** Calls `handler(count)` on every wake; returns the unsubscribe function (also Disposable). */
  on(handler: InterruptHandler): Subscription {
    return this.#waiter.on(handler);
  }

  /** Each wake's count, until the vector is disabled or the device closed (then the loop ends). */
  [Symbol.asyncIterator](): AsyncIterator<number> {
    return this.#waiter[Symbol.asyncIterator]();
  }

  /**
   * Stops delivery until `unmask()`; an interrupt raised meanwhile is held
   * by the device (MSI-X PBA, MSI pending bits, INTx line) and arrives on
   * unmask. How depends on the index: VFIO_DEVICE_SET_IRQS ACTION_MASK where
   * the kernel offers it (INTx), else the vector's mask bit in the MSI-X
   * table (through the mmapped BAR) or the MSI capability. Throws a
   * VfioError (EOPNOTSUPP) where there is no way.
   */
  mask(): void {
    this.#current();
    this.#control.mask(this.vector);
  }

  /** Undoes `mask()`; a pending interrupt is delivered now. */
  unmask(): void {
    this.#current();
    this.#control.unmask(this.vector);
  }

  /** True while masked by `mask()` (or, for INTx, by the kernel after each interrupt). */
  get masked(): boolean {
    this.#current();
    return this.#control.isMasked(this.vector);
  }

  /** A vector of an index that was disabled (and maybe enabled again) is stale: it must not act on the new vectors. */
  #current(): void {
    if (this.#waiter.closed) this.#waiter.tryRead(); // throws the waiter's ECLOSED error
  }

  /**
   * Whether the device holds an interrupt for this masked vector (the MSI-X
   * PBA bit or the MSI pending bit), or undefined where the device does not
   * expose it.
   */
  get pending(): boolean | undefined {
    this.#current();
    return this.#control.isPending(this.vector);
  }

  /** Signals the vector from software (VFIO_DEVICE_SET_IRQS, DATA_NONE | ACTION_TRIGGER), e.g. in tests. */
  trigger(): void {
    this.#current();
    this.#control.trigger(this.vector);
  }

  /** Disables the vector's whole index (INTx, ERR, REQ: the one vector; MSI/MSI-X: all of them), unless already stale. */
  [Symbol.dispose](): void {
    if (!this.#waiter.closed) this.#control.disable();
  }

  /** @internal Ends waits with `reason`, then closes the eventfd. Idempotent. */
  _close(reason: CloseReason): void {
    this.#forget();
    this.#waiter.close(reason);
    this.#eventfd.close();
  }
}

/** What the device's backstop runs for a vector: built here so it holds the waiter and eventfd, never the device. */
function releaser(waiter: EventWaiter, eventfd: EventFd): () => void {
  return () => {
    waiter.close({ op: "interrupt wait", detail: "the device was garbage-collected without close()", hint: "Close devices (or use `using`) so their interrupts end when you decide." });
    eventfd.close();
  };
}

/** The vectors of an enabled index, in order; disposing it disables the index. */
export type IrqVectors = readonly IrqVector[] & Disposable;

/**
 * A frozen copy of `vectors` whose `[Symbol.dispose]` calls `dispose`, but
 * only while one of them is live: disposing a list from before a
 * disable()+enable() must not turn off the new vectors.
 */
export function vectorList(vectors: readonly IrqVector[], dispose: () => void): IrqVectors {
  const list = [...vectors];
  Object.defineProperty(list, Symbol.dispose, { value: () => void (list.some((v) => !v.closed) && dispose()) });
  return Object.freeze(list) as unknown as IrqVectors;
}
