/**
 * An eventfd(2) the library owns: created non-blocking and close-on-exec,
 * read without blocking (0 when nothing is pending), written to signal it.
 * VFIO_DEVICE_SET_IRQS hands these to the kernel, which adds 1 to the counter
 * for every interrupt; a read returns the sum and resets it to 0.
 */
import { EAGAIN, EFD_CLOEXEC, EFD_NONBLOCK } from "../sys/constants.ts";
import { check, syscallError } from "../sys/check.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import { sys } from "../sys/runtime.ts";
import { invalidArgument } from "../support/errors.ts";
import { show } from "../support/format.ts";

/** A non-blocking eventfd with a counter starting at 0. */
export class EventFd implements Disposable {
  readonly #fd: OwnedFd;
  // One 8-byte buffer per eventfd: reads and writes never allocate.
  readonly #word = new BigUint64Array(1);
  readonly #bytes = new Uint8Array(this.#word.buffer);

  /**
   * Creates the eventfd. Internally this calls eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC).
   * @param label names the eventfd in errors, e.g. `"<device>#msix[3]"`.
   */
  constructor(readonly label: string) {
    const fd = check(sys().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd", label, {
      EMFILE: "The process ran out of file descriptors: close devices you no longer use or raise `ulimit -n`.",
      ENFILE: "The system ran out of file descriptors.",
    });
    this.#fd = new OwnedFd(fd, label, "eventfd");
  }

  /** The file descriptor (for VFIO_DEVICE_SET_IRQS and the waiter). Throws after close. */
  get fd(): number {
    return this.#fd.get("eventfd");
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  /**
   * The counter's value, resetting it to 0, or 0 when nothing was signalled
   * (never blocks). Internally this is one read(2) of 8 bytes.
   */
  readNow(): number {
    const fd = this.#fd.get("eventfd read");
    const n = sys().read(fd, this.#bytes, 8);
    if (n === 8) return Number(this.#word[0]);
    if (n === -EAGAIN) return 0;
    throw syscallError("eventfd read", this.label, {}, n < 0 ? -n : 5);
  }

  /** Adds `n` (default 1) to the counter, waking readers. Internally this is one write(2). */
  signal(n = 1): void {
    if (!Number.isSafeInteger(n) || n < 1) {
      throw invalidArgument("eventfd write", `${show(n)} is not a positive integer`, "Signal a count of at least 1.", this.label);
    }
    const fd = this.#fd.get("eventfd write");
    this.#word[0] = BigInt(n);
    const wrote = sys().write(fd, this.#bytes, 8);
    if (wrote !== 8) throw syscallError("eventfd write", this.label, { EAGAIN: "The counter would overflow (2^64-2): read it first." }, wrote < 0 ? -wrote : 5);
  }

  /** close(2); idempotent. */
  close(): void {
    this.#fd.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
