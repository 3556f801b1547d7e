/**
 * Waiting for an eventfd without blocking the event loop.
 *
 * The wake mechanism is the runtime seam's `stream(fd)` on the non-blocking
 * eventfd (on Bun, `Bun.file(fd).stream()`: Bun polls the fd in its own
 * event loop and hands over what it reads; bench/eventfd-wake.ts measured
 * it against a Worker blocking in read(2)). Facts this code is built
 * around, measured on Bun 1.4:
 * - the stream never closes an fd it was given by number;
 * - it reads ahead whenever the fd is readable, even with no read() pending,
 *   so once started every count flows through it (tryRead() still sees what
 *   the stream has not taken yet);
 * - an open stream keeps the process alive, so it is started lazily, on the
 *   first next()/on()/iteration, and only close() ends it;
 * - closing the fd under a pending read leaves that read pending forever (no
 *   crash), while reader.cancel() settles it at once: close() cancels first,
 *   then the owner closes the fd.
 */
import { VfioError } from "../support/errors.ts";
import { functionArg } from "../support/args.ts";
import { sys } from "../sys/runtime.ts";
import type { ByteStream } from "../sys/types.ts";
import { CounterChunks } from "./counter-chunks.ts";
import type { EventFd } from "./eventfd.ts";

/** Called with the number of interrupts coalesced since the previous wake (always >= 1). */
export type InterruptHandler = (count: number) => void;

/** Unsubscribes a handler; also `Disposable`, so `using sub = vector.on(...)` works. */
export interface Subscription extends Disposable {
  (): void;
}

/** Why waits end: becomes the VfioError that pending and later waits reject with. */
export interface CloseReason {
  op: string;
  detail: string;
  hint: string;
}

interface Pending {
  resolve(count: number): void;
  reject(err: VfioError): void;
}

/**
 * The waiting side of one eventfd: `next()`, `on()`, `tryRead()` and async
 * iteration. Counts are delivered once: to the oldest pending `next()` and
 * to every `on()` handler; with neither present they accumulate until the
 * next `next()` or `tryRead()`.
 */
export class EventWaiter implements AsyncIterable<number> {
  readonly #eventfd: EventFd;
  readonly #chunks = new CounterChunks();
  readonly #waits: Pending[] = [];
  readonly #handlers = new Set<InterruptHandler>();
  #reader: ByteStream | undefined;
  #accumulated = 0;
  #closedWith: VfioError | undefined;

  constructor(eventfd: EventFd) {
    this.#eventfd = eventfd;
  }

  /** True once closed: waits reject, tryRead() throws. */
  get closed(): boolean {
    return this.#closedWith !== undefined;
  }

  /** Number of `next()` calls still waiting. */
  get waiting(): number {
    return this.#waits.length;
  }

  /** True once the stream reader was started (it runs until close()). */
  get streaming(): boolean {
    return this.#reader !== undefined;
  }

  /**
   * Resolves with the interrupts coalesced since the previous read, as soon
   * as there is at least one. Rejects with a VfioError (ECLOSED) when the
   * vector is disabled or its device closed first.
   */
  next(): Promise<number> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const ready = this.#take();
    if (ready > 0) return Promise.resolve(ready);
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#waits.push({ resolve, reject });
    this.#startStream();
    return promise;
  }

  /**
   * The interrupts coalesced since the previous read, or 0; never waits.
   * For busy-poll loops: one read(2) on the eventfd (about a microsecond).
   */
  tryRead(): number {
    if (this.#closedWith) throw this.#closedWith;
    return this.#take();
  }

  /**
   * Calls `handler(count)` on every wake until unsubscribed or closed.
   * A handler that throws is reported as an uncaught error, like an
   * EventEmitter listener; the other handlers still run.
   */
  on(handler: InterruptHandler): Subscription {
    functionArg("on", "handler", handler, this.#eventfd.label);
    if (this.#closedWith) throw this.#closedWith;
    this.#handlers.add(handler);
    this.#startStream();
    const off = (() => void this.#handlers.delete(handler)) as Subscription;
    off[Symbol.dispose] = off;
    return off;
  }

  /**
   * Yields each wake's count; ends (instead of throwing) when the vector is
   * disabled or its device closed. Breaking out of the loop does not disable
   * the vector.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<number> {
    for (;;) {
      let count: number;
      try {
        count = await this.next();
      } catch (err) {
        if (err instanceof VfioError && err.code === "ECLOSED") return;
        throw err;
      }
      yield count;
    }
  }

  /**
   * Ends waiting: pending and later `next()` calls reject with a VfioError
   * (ECLOSED) built from `reason`; handlers are dropped; the stream reader
   * is cancelled so the owner may close the eventfd right after. Idempotent.
   */
  close(reason: CloseReason): void {
    if (this.#closedWith) return;
    this.#closedWith = new VfioError({ op: reason.op, code: "ECLOSED", errno: 9, path: this.#eventfd.label, detail: reason.detail, hint: reason.hint });
    this.#handlers.clear();
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.cancel();
    for (const wait of this.#waits.splice(0)) wait.reject(this.#closedWith);
  }

  /** What has accumulated plus what the eventfd holds now; handlers see the fresh part. */
  #take(): number {
    const fresh = this.#eventfd.readNow();
    if (fresh > 0) this.#notifyHandlers(fresh);
    const total = this.#accumulated + fresh;
    this.#accumulated = 0;
    return total;
  }

  #startStream(): void {
    if (this.#reader || this.#closedWith) return;
    const reader = sys().stream(this.#eventfd.fd);
    this.#reader = reader;
    void this.#pump(reader);
  }

  async #pump(reader: ByteStream): Promise<void> {
    try {
      for (;;) {
        const value = await reader.read();
        if (!value || this.#reader !== reader) return;
        const count = this.#chunks.push(value);
        if (count > 0) this.#deliver(count);
      }
    } catch (err) {
      if (this.#reader !== reader) return;
      this.close({
        op: "eventfd read",
        detail: `the eventfd stream failed: ${err instanceof Error ? err.message : String(err)}`,
        hint: "The eventfd was closed or broken underneath the library: disable and enable the vector again.",
      });
    }
  }

  #deliver(count: number): void {
    this.#notifyHandlers(count);
    const wait = this.#waits.shift();
    if (wait) wait.resolve(count);
    else if (this.#handlers.size === 0) this.#accumulated += count;
  }

  #notifyHandlers(count: number): void {
    for (const handler of this.#handlers) {
      try {
        handler(count);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
