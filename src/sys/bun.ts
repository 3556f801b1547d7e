/**
 * The Bun implementation of the runtime seam: libc through `bun:ffi`.
 *
 * The symbol table is plain data with the C prototype beside each entry.
 * It is opened on first use, not at import, so commands that need no
 * system call (`bun-vfio list`) never load libc. Facts that shaped it
 * (measured on Bun 1.4, DESIGN.md):
 * - `ssize_t`/`off_t` returns are `i64_fast` so small values are numbers;
 * - `mmap` returns `i64_fast` because a `ptr` return turns MAP_FAILED into
 *   2^64-1, which a truthiness test misses: we test for -1;
 * - `ioctl` is declared once with a `ptr` third argument: it takes a typed
 *   array or a plain number, so integer-argument ioctls work;
 * - errno is read through `__errno_location()` right after the failing
 *   call, in the same synchronous block;
 * - `read.u8..u64` are single loads the JIT never merges or hoists;
 *   typed-array stores are single stores; DataView getters (byte-wise in
 *   slow tiers) and Atomics (locked RMW) are never used on device memory.
 */
import { dlopen, FFIType, read, toArrayBuffer, type Pointer as FfiPointer } from "bun:ffi";
import type { ByteStream, MmapResult, OrderedAccess, Pointer, Sys } from "./types.ts";
import { BufferView } from "./buffer-view.ts";
import { createOrderedMmio } from "./bun-ordered-mmio.ts";

const { i32, u32, u64, i64, i64_fast, ptr, cstring } = FFIType;

const SYMBOLS = {
  /** int open(const char *path, int flags, mode_t mode); */
  open: { args: [ptr, i32, u32], returns: i32 },
  /** int close(int fd); */
  close: { args: [i32], returns: i32 },
  /** int ioctl(int fd, unsigned long request, void *arg); */
  ioctl: { args: [i32, u64, ptr], returns: i32 },
  /** void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off); */
  mmap: { args: [ptr, u64, i32, i32, i32, i64], returns: i64_fast },
  /** int munmap(void *addr, size_t len); */
  munmap: { args: [ptr, u64], returns: i32 },
  /** int mprotect(void *addr, size_t len, int prot); */
  mprotect: { args: [ptr, u64, i32], returns: i32 },
  /** ssize_t pread(int fd, void *buf, size_t count, off_t offset); */
  pread: { args: [i32, ptr, u64, i64], returns: i64_fast },
  /** ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset); */
  pwrite: { args: [i32, ptr, u64, i64], returns: i64_fast },
  /** ssize_t read(int fd, void *buf, size_t count); */
  read: { args: [i32, ptr, u64], returns: i64_fast },
  /** ssize_t write(int fd, const void *buf, size_t count); */
  write: { args: [i32, ptr, u64], returns: i64_fast },
  /** int eventfd(unsigned int initval, int flags); */
  eventfd: { args: [u32, i32], returns: i32 },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout); */
  poll: { args: [ptr, u64, i32], returns: i32 },
  /** long sysconf(int name); */
  sysconf: { args: [i32], returns: i64_fast },
  /** int getrlimit(int resource, struct rlimit *rlim); */
  getrlimit: { args: [i32, ptr], returns: i32 },
  /** int *__errno_location(void); */
  __errno_location: { args: [], returns: ptr },
  /** char *strerror(int errnum); */
  strerror: { args: [i32], returns: cstring },
} as const;

function openLibc() {
  const { symbols } = dlopen("libc.so.6", SYMBOLS);
  const errnoAt = symbols.__errno_location();
  if (!errnoAt) throw new Error("bun-vfio: __errno_location() returned NULL");
  return { libc: symbols, errnoAt: errnoAt as FfiPointer };
}

let opened: ReturnType<typeof openLibc> | undefined;

function libc(): ReturnType<typeof openLibc> {
  return (opened ??= openLibc());
}

/** `ret` when non-negative, else -errno read at once. */
function result(ret: number | bigint): number {
  return ret < 0 ? -read.i32(libc().errnoAt, 0) : Number(ret);
}

const toFfi = (p: Pointer): FfiPointer => p as unknown as FfiPointer;

class BunView extends BufferView {
  readonly #at: FfiPointer;
  #ordered: OrderedAccess | undefined;

  constructor(at: FfiPointer, length: number) {
    super(toArrayBuffer(at, 0, length), length);
    this.#at = at;
  }

  load8(offset: number): number {
    return read.u8(this.#at, offset);
  }
  load16(offset: number): number {
    return read.u16(this.#at, offset);
  }
  load32(offset: number): number {
    return read.u32(this.#at, offset);
  }
  load64(offset: number): bigint {
    return read.u64(this.#at, offset);
  }

  /** The machine-code accessors (src/sys/machine-code.ts), bound to this view's address; built on first use. */
  get ordered(): OrderedAccess {
    return (this.#ordered ??= bindOrdered(Number(this.#at)));
  }
}

/** The stubs with the address filled in, so callers pass offsets like every other view access. */
function bindOrdered(a: number): OrderedAccess {
  const o = createOrderedMmio();
  return {
    load8: (off) => o.load8(a, off),
    load16: (off) => o.load16(a, off),
    load32: (off) => o.load32(a, off),
    load64: (off) => o.load64(a, off),
    store8: (off, v) => o.store8(a, off, v),
    store16: (off, v) => o.store16(a, off, v),
    store32: (off, v) => o.store32(a, off, v),
    store64: (off, v) => o.store64(a, off, v),
    store8Relaxed: (off, v) => o.store8Relaxed(a, off, v),
    store16Relaxed: (off, v) => o.store16Relaxed(a, off, v),
    store32Relaxed: (off, v) => o.store32Relaxed(a, off, v),
    store64Relaxed: (off, v) => o.store64Relaxed(a, off, v),
  };
}

function cString(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** The Bun implementation of {@link Sys}. */
export const bunSys: Sys = {
  name: "bun",
  arch: process.arch === "x64" ? "x64" : process.arch === "arm64" ? "arm64" : "other",
  open: (path, flags, mode = 0) => result(libc().libc.open(cString(path), flags, mode)),
  close: (fd) => result(libc().libc.close(fd)),
  ioctl: (fd, request, arg) => result(libc().libc.ioctl(fd, request, arg as never)),
  pread: (fd, buf, length, offset) => result(libc().libc.pread(fd, buf, length, offset as number)),
  pwrite: (fd, buf, length, offset) => result(libc().libc.pwrite(fd, buf, length, offset as number)),
  read: (fd, buf, length) => result(libc().libc.read(fd, buf, length)),
  write: (fd, buf, length) => result(libc().libc.write(fd, buf, length)),
  eventfd: (initval, flags) => result(libc().libc.eventfd(initval, flags)),
  pollOne(fd, events, timeoutMs) {
    const pfd = new Int32Array([fd, events]); // struct pollfd { int fd; short events; short revents; }
    const ret = result(libc().libc.poll(pfd, 1, timeoutMs));
    return ret <= 0 ? ret : pfd[1]! >>> 16;
  },
  mmap(length, prot, flags, fd, offset): MmapResult {
    const at = libc().libc.mmap(null, length, prot, flags, fd, offset as number);
    if (at === -1) return { errno: read.i32(libc().errnoAt, 0) };
    return { pointer: Number(at) as unknown as Pointer };
  },
  munmap: (pointer, length) => result(libc().libc.munmap(toFfi(pointer), length)),
  mprotect: (pointer, length, prot) => result(libc().libc.mprotect(toFfi(pointer), length, prot)),
  address: (pointer) => BigInt(pointer as unknown as number),
  view: (pointer, length) => new BunView(toFfi(pointer), length),
  barrier: (kind) => createOrderedMmio()[kind](),
  sysconf: (name) => result(libc().libc.sysconf(name)),
  getrlimit(resource) {
    const limits = new BigUint64Array(2); // struct rlimit { rlim_t rlim_cur, rlim_max; }
    const ret = result(libc().libc.getrlimit(resource, limits));
    return ret < 0 ? ret : { soft: limits[0]!, hard: limits[1]! };
  },
  strerror: (errno) => String(libc().libc.strerror(errno)),
  stream(fd): ByteStream {
    const reader = Bun.file(fd).stream().getReader();
    return {
      async read() {
        const { done, value } = await reader.read();
        return done ? undefined : (value as Uint8Array);
      },
      // cancel() detaches the fd from Bun's poller synchronously; its promise only reports completion.
      cancel: () => void reader.cancel().catch(() => {}),
    };
  },
};

void i64;
