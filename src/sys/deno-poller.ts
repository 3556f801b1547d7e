/**
 * Waiting for non-blocking fds on Deno without blocking the event loop.
 *
 * Deno cannot read an eventfd through its own I/O (Deno.open of
 * /proc/self/fd/N: ENXIO; node:fs: EBADF; net.Socket refuses), so one
 * poll(2) runs as a `nonblocking` FFI call on Deno's blocking thread pool
 * over every fd that has a pending read, plus a private wake eventfd. A
 * pending nonblocking FFI call cannot be cancelled and keeps the process
 * alive, so arming or cancelling a watch writes the wake eventfd: the poll
 * returns, the set is rebuilt, and with no watch left no call is pending.
 * Readiness is only a hint: the read itself is a non-blocking read(2) on
 * the JS thread.
 */

const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLNVAL = 0x20;
/** Longest single poll(2); the loop re-arms while watches remain. */
const POLL_SLICE_MS = 1000;

/** The libc calls the poller needs (from the Deno Sys). */
export interface PollerOps {
  /** poll(2) as a nonblocking FFI call (runs on another thread). */
  pollAsync(fds: Int32Array, count: number, timeoutMs: number): Promise<number>;
  /** eventfd(2) with EFD_NONBLOCK|EFD_CLOEXEC: fd or -errno. */
  eventfd(): number;
  /** write(2)/read(2) of 8 bytes: bytes or -errno. */
  write8(fd: number, buf: Uint8Array): number;
  read(fd: number, buf: Uint8Array): number;
}

type Watch = () => void;

/** One poll loop shared by every stream of the process. */
export class Poller {
  readonly #ops: PollerOps;
  readonly #watches = new Map<number, Set<Watch>>();
  #wakeFd = -1;
  #running = false;
  readonly #one = new Uint8Array(new BigUint64Array([1n]).buffer);
  readonly #drain = new Uint8Array(8);

  constructor(ops: PollerOps) {
    this.#ops = ops;
  }

  /** Calls `onReady` once, when `fd` is readable or broken (or never, if unwatched first). */
  watch(fd: number, onReady: Watch): void {
    let set = this.#watches.get(fd);
    if (!set) this.#watches.set(fd, (set = new Set()));
    set.add(onReady);
    this.#kick();
  }

  unwatch(fd: number, onReady: Watch): void {
    const set = this.#watches.get(fd);
    if (!set?.delete(onReady)) return;
    if (set.size === 0) this.#watches.delete(fd);
    this.#kick();
  }

  #kick(): void {
    if (this.#wakeFd < 0) {
      const fd = this.#ops.eventfd();
      if (fd < 0) throw new Error(`bun-vfio: eventfd(2) for the Deno poller failed (errno ${-fd})`);
      this.#wakeFd = fd;
    }
    if (this.#running) this.#ops.write8(this.#wakeFd, this.#one);
    else if (this.#watches.size > 0) {
      this.#running = true;
      void this.#loop();
    }
  }

  async #loop(): Promise<void> {
    try {
      while (this.#watches.size > 0) {
        const fds = [this.#wakeFd, ...this.#watches.keys()];
        const pfd = new Int32Array(fds.length * 2); // struct pollfd { int fd; short events; short revents; }
        fds.forEach((fd, i) => {
          pfd[i * 2] = fd;
          pfd[i * 2 + 1] = POLLIN;
        });
        // Bounded, so a blocking-pool thread is never parked for good (an fd closed under a poll does not wake it).
        const ret = await this.#ops.pollAsync(pfd, fds.length, POLL_SLICE_MS);
        if (ret < 0) continue; // EINTR: errno is another thread's; poll again
        if (pfd[1]! >>> 16) this.#ops.read(this.#wakeFd, this.#drain);
        for (let i = 1; i < fds.length; i++) {
          const revents = pfd[i * 2 + 1]! >>> 16;
          if (!(revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL))) continue;
          const set = this.#watches.get(fds[i]!);
          if (!set) continue;
          this.#watches.delete(fds[i]!);
          for (const ready of set) ready();
        }
      }
    } finally {
      this.#running = false;
      if (this.#watches.size > 0) this.#kick(); // a watch added while the loop was exiting
    }
  }
}
