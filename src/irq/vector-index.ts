/**
 * What MSI and MSI-X share: enable N vectors with one eventfd each, add
 * vectors later, mask, trigger, disable. Subclasses say how a vector is
 * masked when the kernel cannot do it (MSI-X table, MSI Mask Bits).
 */
import { VfioError } from "../support/errors.ts";
import { show } from "../support/format.ts";
import type { IrqInfo } from "../uapi/structs.ts";
import { alreadyEnabled, badCount, indexAbsent, notEnabled } from "./irq-errors.ts";
import { irqIndexName, type IrqPciDevice } from "./port.ts";
import { assignEventfds, disableIndex, maskVectors, triggerVectors } from "./set-irqs.ts";
import { IrqVector, vectorList, type IrqKind, type IrqVectors, type VectorControl } from "./vector.ts";

/** Lets one of INTx, MSI, MSI-X run at a time (vfio-pci's rule), per device. */
export interface ExclusiveGate {
  /** Throws a VfioError (EBUSY) when another of INTx/MSI/MSI-X is enabled. */
  claim(index: number, op: string): void;
  release(index: number): void;
}

/** A way to mask vectors outside SET_IRQS. */
export interface MaskBits {
  setMasked(vector: number, masked: boolean, op: string): void;
  isPending(vector: number, op: string): boolean;
  close(): void;
}

/** MSI or MSI-X of one device: `enable(n)`, `grow(n)`, `disable()`, and the vectors. */
export abstract class VectorIndex {
  protected readonly dev: IrqPciDevice;
  readonly #gate: ExclusiveGate;
  /** The vfio-pci IRQ index (1 MSI, 2 MSI-X). */
  readonly index: number;
  /** `"msi"` or `"msix"`. */
  readonly kind: IrqKind;
  #vectors: IrqVector[] = [];
  #list: IrqVectors | undefined;
  readonly #masked = new Set<number>();
  #maskBits: MaskBits | undefined;
  /** IrqInfo.maskable as read at enable(): SET_IRQS masking works (never true for vfio-pci MSI/MSI-X today). */
  #kernelMasks = false;
  readonly #control: VectorControl = {
    mask: (v) => this.#setMask(v, true, "mask"),
    unmask: (v) => this.#setMask(v, false, "unmask"),
    isMasked: (v) => this.#masked.has(v),
    isPending: (v) => this.#pending(v),
    trigger: (v) => this.trigger(v),
    disable: () => this.disable(),
  };

  protected constructor(dev: IrqPciDevice, gate: ExclusiveGate, index: number, kind: IrqKind) {
    this.dev = dev;
    this.#gate = gate;
    this.index = index;
    this.kind = kind;
  }

  /** Opens the subclass's mask mechanism, or throws a VfioError (EOPNOTSUPP) saying why there is none. */
  protected abstract openMaskBits(op: string): MaskBits;
  /** The hint given when the device has no vectors at this index. */
  protected abstract get absentHint(): string;

  /** Count and flags (MASKABLE, NORESIZE...) of this index. Internally this calls VFIO_DEVICE_GET_IRQ_INFO. */
  info(): IrqInfo {
    return this.dev.irqInfo(this.index);
  }

  /** True while vectors are enabled. */
  get enabled(): boolean {
    return this.#vectors.length > 0;
  }

  /** Number of enabled vectors (0 when disabled). */
  get count(): number {
    return this.#vectors.length;
  }

  /** The enabled vectors (empty when disabled); disposing the list disables the index. */
  get vectors(): IrqVectors {
    this.#list ??= vectorList(this.#vectors, () => this.disable());
    return this.#list;
  }

  /** Vector `n`; throws a VfioError when it is not enabled. */
  vector(n: number): IrqVector {
    return this.#vectors[this.#checkVector(n, "vector")]!;
  }

  /**
   * Enables `count` vectors, each with its own eventfd. Internally this
   * calls VFIO_DEVICE_GET_IRQ_INFO, then VFIO_DEVICE_SET_IRQS with
   * DATA_EVENTFD | ACTION_TRIGGER. Throws a VfioError when the index is
   * already on (EBUSY), another of INTx/MSI/MSI-X is (EBUSY), the device has
   * no such vectors (ENODEV) or fewer than `count` (EINVAL).
   */
  enable(count: number): IrqVectors {
    const op = `${this.kind}.enable`;
    const info = this.info();
    if (this.enabled) throw alreadyEnabled(op, this.index, this.count, this.dev.path, true);
    this.#checkCount(op, count, info);
    this.#gate.claim(this.index, op);
    const vectors: IrqVector[] = [];
    try {
      for (let v = 0; v < count; v++) vectors.push(this.#newVector(v));
      assignEventfds(this.dev, this.index, 0, vectors.map((x) => x.unsafeFd));
    } catch (err) {
      for (const x of vectors) x._close(this.#closeReason("the enable failed"));
      this.#gate.release(this.index);
      throw err;
    }
    this.#kernelMasks = info.maskable;
    this.#setVectors(vectors);
    return this.vectors;
  }

  /**
   * Adds vectors up to `count` in all, keeping the existing ones (their
   * eventfds, waiters and handlers). Where the kernel supports dynamic
   * MSI-X (irqInfo().noresize is false) only the new vectors are assigned;
   * otherwise the index is disabled and re-enabled with the larger count
   * and the same eventfds, so an interrupt raised during the swap may be
   * lost: grow before the device starts raising. Internally this calls
   * VFIO_DEVICE_SET_IRQS once or twice.
   */
  grow(count: number): IrqVectors {
    const op = `${this.kind}.grow`;
    const info = this.info();
    if (!this.enabled) throw notEnabled(op, this.index, this.dev);
    this.#checkCount(op, count, info);
    if (count <= this.count) {
      throw new VfioError({ op, code: "EINVAL", errno: 22, path: this.dev.path, detail: `${this.count} vectors are enabled already, ${count} asked for`, hint: "grow() only adds vectors; to have fewer, disable() and enable(n)." });
    }
    const added: IrqVector[] = [];
    try {
      for (let v = this.count; v < count; v++) added.push(this.#newVector(v));
      if (!info.noresize) {
        assignEventfds(this.dev, this.index, this.count, added.map((x) => x.unsafeFd));
      } else {
        disableIndex(this.dev, this.index);
        this.#reenable([...this.#vectors, ...added]);
      }
    } catch (err) {
      for (const x of added) x._close(this.#closeReason("growing failed"));
      throw err;
    }
    this.#setVectors([...this.#vectors, ...added]);
    this.#reapplyMasks(op);
    return this.vectors;
  }

  /**
   * Turns the index off: VFIO_DEVICE_SET_IRQS with DATA_NONE |
   * ACTION_TRIGGER and count 0, then ends every vector's waits (they reject
   * with a VfioError, ECLOSED) and closes the eventfds. The device stays
   * usable: enable() again with any count. Idempotent.
   */
  disable(): void {
    this.#shutdown(`${irqIndexName(this.index)} was disabled`, `Enable ${irqIndexName(this.index)} again to wait for its vectors.`);
  }

  /** Signals vector `n` from software (VFIO_DEVICE_SET_IRQS, DATA_NONE | ACTION_TRIGGER). */
  trigger(n: number): void {
    triggerVectors(this.dev, this.index, this.#checkVector(n, `${this.kind}.trigger`));
  }

  /** @internal Device close: like disable(), with waits told the device closed. */
  _teardown(): void {
    this.#shutdown("the device was closed", "Open the device again and re-enable its interrupts.");
  }

  #shutdown(detail: string, hint: string): void {
    if (!this.enabled) return;
    const vectors = this.#vectors;
    try {
      if (!this.dev.closed) disableIndex(this.dev, this.index);
    } finally {
      this.#setVectors([]);
      this.#masked.clear();
      this.#maskBits?.close();
      this.#maskBits = undefined;
      this.#gate.release(this.index);
      for (const x of vectors) x._close({ op: "interrupt wait", detail, hint });
    }
  }

  #newVector(v: number): IrqVector {
    return new IrqVector(this.kind, v, `${this.dev.path}#${this.kind}[${v}]`, this.#control, this.dev.lifetime);
  }

  #setVectors(vectors: IrqVector[]): void {
    this.#vectors = vectors;
    this.#list = undefined;
  }

  /** Non-dynamic grow: enable with every eventfd; on failure restore the old count, or close all. */
  #reenable(all: IrqVector[]): void {
    try {
      assignEventfds(this.dev, this.index, 0, all.map((x) => x.unsafeFd));
    } catch (err) {
      try {
        assignEventfds(this.dev, this.index, 0, this.#vectors.map((x) => x.unsafeFd));
        this.#reapplyMasks(`${this.kind}.grow`);
      } catch {
        const old = this.#vectors;
        this.#setVectors([]);
        this.#gate.release(this.index);
        for (const x of old) x._close(this.#closeReason("growing failed and the old vectors could not be restored"));
      }
      throw err;
    }
  }

  #checkCount(op: string, count: number, info: IrqInfo): void {
    if (info.count === 0) throw indexAbsent(op, this.index, this.dev.path, this.absentHint);
    if (!Number.isInteger(count) || count < 1 || count > info.count) throw badCount(op, this.index, count, info.count, this.dev.path);
  }

  #checkVector(n: number, op: string): number {
    if (!this.enabled) throw notEnabled(op, this.index, this.dev);
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n >= this.count) {
      throw new VfioError({ op, code: "EINVAL", errno: 22, path: this.dev.path, detail: `vector ${show(n)} is not enabled (${this.count} are)`, hint: `Use a vector from 0 to ${this.count - 1}, or grow() first.` });
    }
    return n;
  }

  #setMask(n: number, masked: boolean, verb: string): void {
    const op = `${this.kind}.${verb}`;
    this.#checkVector(n, op);
    if (this.#kernelMasks) maskVectors(this.dev, this.index, n, 1, masked);
    else {
      this.#maskBits ??= this.openMaskBits(op);
      this.#maskBits.setMasked(n, masked, op);
    }
    if (masked) this.#masked.add(n);
    else this.#masked.delete(n);
  }

  #pending(n: number): boolean | undefined {
    const op = `${this.kind}.pending`;
    this.#checkVector(n, op);
    try {
      this.#maskBits ??= this.openMaskBits(op);
    } catch (err) {
      if (err instanceof VfioError && err.code === "EOPNOTSUPP") return undefined;
      throw err;
    }
    return this.#maskBits.isPending(n, op);
  }

  /** The kernel unmasks a vector whenever it (re)assigns it: put back the masks the caller set. */
  #reapplyMasks(op: string): void {
    if (this.#masked.size === 0) return;
    if (this.#kernelMasks) {
      for (const v of this.#masked) maskVectors(this.dev, this.index, v, 1, true);
      return;
    }
    this.#maskBits ??= this.openMaskBits(op);
    for (const v of this.#masked) this.#maskBits.setMasked(v, true, op);
  }

  #closeReason(detail: string) {
    return { op: "interrupt wait", detail, hint: `Enable ${irqIndexName(this.index)} again to wait for its vectors.` };
  }
}
