/**
 * The Deno implementation of the runtime seam: libc through `Deno.dlopen`,
 * opened on first use (needs `--allow-ffi`, which `-A` includes).
 *
 * Facts that shaped it (measured on Deno 2.9.6, DESIGN.md):
 * - variadic `ioctl` needs two declarations (pointer and integer third
 *   argument); `isize`/`i64` results come back as BigInt;
 * - a `pointer` result of mmap shows MAP_FAILED as the value 2^64-1;
 * - errno read through `__errno_location()` after a failing call can be
 *   overwritten by the runtime's own failing system calls on the same
 *   thread, so system calls whose error the library reports go through raw
 *   kernel entries (./deno-raw-syscall.ts) that return `-errno` themselves,
 *   loaded as a shared library from a memfd (./deno-stub-library.ts: fast
 *   calls), else as an UnsafeFnPointer page (slow calls); libc + errno is
 *   the fallback when neither can be built;
 * - the same library carries Bun's ordered-MMIO stubs (./machine-code.ts),
 *   so `MemoryView.ordered` and barriers are the same instructions as on Bun;
 * - `UnsafePointerView.getUint8..getBigUint64` are single loads of the
 *   width; there are no setters, so stores go through typed arrays over
 *   `getArrayBuffer`, which `release()` detaches with `transfer(0)`;
 * - eventfds are awaited through one nonblocking FFI poll(2) (./deno-poller.ts).
 */
import type { ByteStream, MmapResult, OrderedAccess, Pointer, Sys } from "./types.ts";
import { BufferView } from "./buffer-view.ts";
import { VfioError } from "../support/errors.ts";
import { rawSyscalls, type RawSyscalls } from "./deno-raw-syscall.ts";
import { loadStubLibrary, type DenoMmio } from "./deno-stub-library.ts";
import { Poller } from "./deno-poller.ts";

const SYMBOLS = {
  /** int open(const char *path, int flags, mode_t mode); */
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  /** int close(int fd); */
  close: { parameters: ["i32"], result: "i32" },
  /** int ioctl(int fd, unsigned long request, void *arg); */
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** int ioctl(int fd, unsigned long request, unsigned long arg); (the same variadic function) */
  ioctlInt: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  /** void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off); */
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  /** int munmap(void *addr, size_t len); */
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  /** int mprotect(void *addr, size_t len, int prot); */
  mprotect: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  /** ssize_t pread(int fd, void *buf, size_t count, off_t offset); */
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  /** ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset); */
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  /** ssize_t read(int fd, void *buf, size_t count); */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** ssize_t write(int fd, const void *buf, size_t count); */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** int eventfd(unsigned int initval, int flags); */
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout); */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /** int poll(...), run on Deno's blocking pool: the wait of ./deno-poller.ts */
  pollAsync: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  /** long sysconf(int name); */
  sysconf: { parameters: ["i32"], result: "i64" },
  /** int getrlimit(int resource, struct rlimit *rlim); */
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  /** int *__errno_location(void); */
  __errno_location: { parameters: [], result: "pointer" },
  /** char *strerror(int errnum); */
  strerror: { parameters: ["i32"], result: "pointer" },
  /** int memfd_create(const char *name, unsigned int flags); (the stub library) */
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
} as const;

const MAP_FAILED = 2n ** 64n - 1n;
const PROT_READ_WRITE = 3;
const PROT_READ_EXEC = 5;
const MAP_PRIVATE_ANONYMOUS = 0x22;
const AT_FDCWD = -100;
const EFD_NONBLOCK_CLOEXEC = 0o4000 | 0o2000000;

/** Where system-call errors come from and how the stubs are called (see {@link denoStubs}). */
type Stubs = { kind: "library"; raw: RawSyscalls; mmio: DenoMmio } | { kind: "page"; raw: RawSyscalls; mmio?: undefined } | { kind: "none"; raw?: undefined; mmio?: undefined };

function openLibc() {
  const libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  const errnoAt = libc.__errno_location();
  if (!errnoAt) throw new Error("bun-vfio: __errno_location() returned NULL");
  const errno = new Deno.UnsafePointerView(errnoAt);
  const mode = envVar("BUN_VFIO_DENO_ERRNO") === "libc" ? "libc" : envVar("BUN_VFIO_DENO_STUBS") === "page" ? "page" : "library";
  const library = mode === "library" ? loadStubLibrary(Deno.build.arch, {
    memfdCreate: (name, flags) => fromLibcWith(errno, libc.memfd_create(name, flags)),
    write: (fd, bytes) => fromLibcWith(errno, libc.write(fd, bytes, BigInt(bytes.length))),
    close: (fd) => void libc.close(fd),
  }) : undefined;
  const page = library || mode === "libc" ? undefined : rawSyscalls(Deno.build.arch, {
    mapAnonymous(length) {
      const p = libc.mmap(null, BigInt(length), PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0n);
      return p && Deno.UnsafePointer.value(p) !== MAP_FAILED ? p : null;
    },
    makeExecutable: (page, length) => libc.mprotect(page, BigInt(length), PROT_READ_EXEC) === 0,
    unmap: (page, length) => void libc.munmap(page, BigInt(length)),
  });
  const stubs: Stubs = library ? { kind: "library", ...library } : page ? { kind: "page", raw: page } : { kind: "none" };
  return { libc, errno, raw: stubs.raw, stubs };
}

/** libc convention with an explicit errno view (before `lib()` exists). */
function fromLibcWith(errno: Deno.UnsafePointerView, ret: number | bigint): number {
  return ret < 0 ? -errno.getInt32(0) : Number(ret);
}

let opened: ReturnType<typeof openLibc> | undefined;

function lib(): ReturnType<typeof openLibc> {
  return (opened ??= openLibc());
}

/** libc convention: `ret` when non-negative, else -errno read at once (may be stale on Deno). */
function fromLibc(ret: number | bigint): number {
  return ret < 0 ? -lib().errno.getInt32(0) : Number(ret);
}

/** Kernel convention: the result or -errno, as returned. */
const fromKernel = (ret: number | bigint): number => Number(ret);

/**
 * How errors are obtained in this process: `"kernel"` (raw system calls
 * return -errno) or `"errno"` (libc + `__errno_location()`, possibly stale).
 * Opens libc.
 */
export function denoErrnoSource(): "kernel" | "errno" {
  return lib().raw ? "kernel" : "errno";
}

/**
 * How this process calls its machine-code stubs: `"library"` (a shared
 * library in a memfd: fast calls; also the ordered-MMIO stubs), `"page"`
 * (an executable page through UnsafeFnPointer: slow calls, no MMIO stubs;
 * `BUN_VFIO_DENO_STUBS=page` forces it) or `"none"` (libc + errno). Opens libc.
 */
export function denoStubs(): "library" | "page" | "none" {
  return lib().stubs.kind;
}

/** An environment variable, or undefined (also without --allow-env). */
function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

const toFfi = (p: Pointer): Deno.PointerObject => p as unknown as Deno.PointerObject;

class DenoView extends BufferView {
  #view: Deno.UnsafePointerView | undefined;
  readonly #pointer: Deno.PointerObject;
  #ordered: OrderedAccess | undefined;

  constructor(at: Deno.PointerObject, length: number) {
    super(Deno.UnsafePointerView.getArrayBuffer(at, length), length);
    this.#view = new Deno.UnsafePointerView(at);
    this.#pointer = at;
    mmioStubs = lib().stubs.mmio;
  }

  #at(): Deno.UnsafePointerView {
    if (!this.#view) throw new RangeError("bun-vfio: memory view used after release");
    return this.#view;
  }
  // Loads: the stub library's relaxed loads (one load instruction of the width, ~11 ns) when loaded, else
  // UnsafePointerView getters (one load in Rust, not volatile, ~40 ns).
  load8(offset: number): number {
    const view = this.#at();
    return mmioStubs ? mmioStubs.load8Relaxed(this.#pointer, offset) : view.getUint8(offset);
  }
  load16(offset: number): number {
    const view = this.#at();
    return mmioStubs ? mmioStubs.load16Relaxed(this.#pointer, offset) : view.getUint16(offset);
  }
  load32(offset: number): number {
    const view = this.#at();
    return mmioStubs ? mmioStubs.load32Relaxed(this.#pointer, offset) : view.getUint32(offset);
  }
  load64(offset: number): bigint {
    const view = this.#at();
    return mmioStubs ? BigInt(mmioStubs.load64Relaxed(this.#pointer, offset)) : view.getBigUint64(offset);
  }
  override release(): void {
    this.#view = undefined;
    this.#ordered = undefined;
    super.release();
  }

  /**
   * Device ordering: the ordered-MMIO stubs of the stub library (the same
   * machine code as Bun's: arm64 `dmb oshld`/`dmb oshst` around one access,
   * x86-64 one `mov`). Without the library (page or libc fallback): x86-64
   * only, where uncached MMIO and TSO keep single loads and stores in
   * program order (UnsafePointerView getters are single loads; stores are
   * single typed-array stores); arm64 refuses rather than pretend.
   */
  get ordered(): OrderedAccess {
    this.#at();
    if (this.#ordered) return this.#ordered;
    const mmio = lib().stubs.mmio;
    if (mmio) return (this.#ordered = bindOrdered(mmio, this.#pointer, () => this.#at()));
    requireX64("ordered device access");
    return (this.#ordered = {
      load8: (o) => this.load8(o), load16: (o) => this.load16(o), load32: (o) => this.load32(o), load64: (o) => this.load64(o),
      store8: (o, v) => this.store8(o, v), store16: (o, v) => this.store16(o, v), store32: (o, v) => this.store32(o, v), store64: (o, v) => this.store64(o, v),
      store8Relaxed: (o, v) => this.store8(o, v), store16Relaxed: (o, v) => this.store16(o, v), store32Relaxed: (o, v) => this.store32(o, v), store64Relaxed: (o, v) => this.store64(o, v),
    });
  }
}

/** The stub library's MMIO stubs once a view was made (read per access without a property chain). */
let mmioStubs: DenoMmio | undefined;

/** The stubs bound to one mapping; `live` throws once the view is released (the stubs would touch unmapped memory). */
function bindOrdered(m: DenoMmio, p: Deno.PointerObject, live: () => unknown): OrderedAccess {
  return {
    load8: (o) => (live(), m.load8(p, o)), load16: (o) => (live(), m.load16(p, o)), load32: (o) => (live(), m.load32(p, o)), load64: (o) => (live(), BigInt(m.load64(p, o))),
    store8: (o, v) => (live(), m.store8(p, o, v)), store16: (o, v) => (live(), m.store16(p, o, v)), store32: (o, v) => (live(), m.store32(p, o, v)), store64: (o, v) => (live(), m.store64(p, o, v)),
    store8Relaxed: (o, v) => (live(), m.store8Relaxed(p, o, v)), store16Relaxed: (o, v) => (live(), m.store16Relaxed(p, o, v)),
    store32Relaxed: (o, v) => (live(), m.store32Relaxed(p, o, v)), store64Relaxed: (o, v) => (live(), m.store64Relaxed(p, o, v)),
  };
}

function requireX64(what: string): void {
  if (Deno.build.arch !== "x86_64") {
    throw new VfioError({ op: what, code: "EOPNOTSUPP", errno: 95, detail: `Deno on ${Deno.build.arch} without the stub library (memfd exec refused, or BUN_VFIO_DENO_STUBS/BUN_VFIO_DENO_ERRNO set) has no ordered device accessors`, hint: "Allow executable memfds (vm.memfd_noexec=0, no SELinux execmem denial) and unset BUN_VFIO_DENO_STUBS and BUN_VFIO_DENO_ERRNO, or run under Bun." });
  }
}

const encoder = new TextEncoder();
const cString = (s: string): Uint8Array => encoder.encode(`${s}\0`);

let poller: Poller | undefined;

function thePoller(): Poller {
  return (poller ??= new Poller({
    pollAsync: (fds, count, timeoutMs) => lib().libc.pollAsync(fds, BigInt(count), timeoutMs),
    eventfd: () => denoSys.eventfd(0, EFD_NONBLOCK_CLOEXEC),
    write8: (fd, buf) => denoSys.write(fd, buf, 8),
    read: (fd, buf) => denoSys.read(fd, buf, buf.byteLength),
  }));
}

const EAGAIN = 11;

/** A ByteStream over a non-blocking fd: read(2) first, poll only when it would block. */
class DenoStream implements ByteStream {
  readonly #fd: number;
  readonly #buf = new Uint8Array(4096);
  #cancelled = false;
  #pending: { resolve(v: Uint8Array | undefined): void; onReady: () => void } | undefined;

  constructor(fd: number) {
    this.#fd = fd;
  }

  read(): Promise<Uint8Array | undefined> {
    if (this.#cancelled) return Promise.resolve(undefined);
    if (this.#pending) return Promise.reject(new Error("bun-vfio: one read() at a time on a stream"));
    const now = this.#tryRead();
    if (now !== EAGAIN) return Promise.resolve(now);
    const { promise, resolve } = Promise.withResolvers<Uint8Array | undefined>();
    const onReady = () => {
      if (this.#pending?.onReady !== onReady) return;
      const got = this.#tryRead();
      if (got === EAGAIN) return thePoller().watch(this.#fd, onReady); // spurious: wait again
      this.#pending = undefined;
      resolve(got);
    };
    this.#pending = { resolve, onReady };
    thePoller().watch(this.#fd, onReady);
    return promise;
  }

  /** The bytes read, EAGAIN when nothing is there, undefined at EOF or on error (the stream ends). */
  #tryRead(): Uint8Array | undefined | typeof EAGAIN {
    const n = denoSys.read(this.#fd, this.#buf, this.#buf.byteLength);
    if (n === -EAGAIN) return EAGAIN;
    return n > 0 ? this.#buf.slice(0, n) : undefined;
  }

  cancel(): void {
    this.#cancelled = true;
    const pending = this.#pending;
    this.#pending = undefined;
    if (!pending) return;
    thePoller().unwatch(this.#fd, pending.onReady);
    pending.resolve(undefined);
  }
}

const ARCH = Deno.build.arch === "x86_64" ? "x64" : Deno.build.arch === "aarch64" ? "arm64" : "other";

/** The Deno implementation of {@link Sys}. */
export const denoSys: Sys = {
  name: "deno",
  arch: ARCH,
  open(path, flags, mode = 0) {
    const { raw, libc } = lib();
    return raw ? fromKernel(raw.openat(AT_FDCWD, cString(path), flags, mode)) : fromLibc(libc.open(cString(path), flags, mode));
  },
  close: (fd) => (lib().raw ? fromKernel(lib().raw!.close(fd)) : fromLibc(lib().libc.close(fd))),
  ioctl(fd, request, arg) {
    const { raw, libc } = lib();
    if (typeof arg === "number") return raw ? fromKernel(raw.ioctlInt(fd, BigInt(request), BigInt(arg))) : fromLibc(libc.ioctlInt(fd, BigInt(request), BigInt(arg)));
    return raw ? fromKernel(raw.ioctl(fd, BigInt(request), arg)) : fromLibc(libc.ioctl(fd, BigInt(request), arg));
  },
  pread(fd, buf, length, offset) {
    const { raw, libc } = lib();
    return raw ? fromKernel(raw.pread64(fd, buf, BigInt(length), BigInt(offset))) : fromLibc(libc.pread(fd, buf, BigInt(length), BigInt(offset)));
  },
  pwrite(fd, buf, length, offset) {
    const { raw, libc } = lib();
    return raw ? fromKernel(raw.pwrite64(fd, buf, BigInt(length), BigInt(offset))) : fromLibc(libc.pwrite(fd, buf, BigInt(length), BigInt(offset)));
  },
  read: (fd, buf, length) => (lib().raw ? fromKernel(lib().raw!.read(fd, buf, BigInt(length))) : fromLibc(lib().libc.read(fd, buf, BigInt(length)))),
  write: (fd, buf, length) => (lib().raw ? fromKernel(lib().raw!.write(fd, buf, BigInt(length))) : fromLibc(lib().libc.write(fd, buf, BigInt(length)))),
  eventfd: (initval, flags) => (lib().raw ? fromKernel(lib().raw!.eventfd2(initval, flags)) : fromLibc(lib().libc.eventfd(initval, flags))),
  pollOne(fd, events, timeoutMs) {
    const pfd = new Int32Array([fd, events]); // struct pollfd { int fd; short events; short revents; }
    const ret = fromLibc(lib().libc.poll(pfd, 1n, timeoutMs));
    return ret <= 0 ? ret : pfd[1]! >>> 16;
  },
  mmap(length, prot, flags, fd, offset): MmapResult {
    const { raw, libc } = lib();
    if (raw) {
      const at = BigInt(raw.mmap(null, BigInt(length), prot, flags, fd, BigInt(offset)));
      if (at < 0n && at >= -4095n) return { errno: Number(-at) };
      return { pointer: Deno.UnsafePointer.create(BigInt.asUintN(64, at)) as unknown as Pointer };
    }
    const at = libc.mmap(null, BigInt(length), prot, flags, fd, BigInt(offset));
    if (!at || BigInt(Deno.UnsafePointer.value(at)) === MAP_FAILED) return { errno: lib().errno.getInt32(0) };
    return { pointer: at as unknown as Pointer };
  },
  munmap(pointer, length) {
    const { raw, libc } = lib();
    return raw ? fromKernel(raw.munmap(toFfi(pointer), BigInt(length))) : fromLibc(libc.munmap(toFfi(pointer), BigInt(length)));
  },
  mprotect(pointer, length, prot) {
    const { raw, libc } = lib();
    return raw ? fromKernel(raw.mprotect(toFfi(pointer), BigInt(length), prot)) : fromLibc(libc.mprotect(toFfi(pointer), BigInt(length), prot));
  },
  address: (pointer) => BigInt(Deno.UnsafePointer.value(toFfi(pointer))),
  view: (pointer, length) => new DenoView(toFfi(pointer), length),
  // The stub library's wmb/rmb/mb (sfence/lfence/mfence, dsb st/ld/sy); without it x86-64 only, as a no-op
  // (UC MMIO and TSO order the library's accessors, see DenoView.ordered).
  barrier(kind) {
    const mmio = lib().stubs.mmio;
    if (mmio) return mmio[kind]();
    requireX64("barrier");
  },
  sysconf: (name) => fromLibc(lib().libc.sysconf(name)),
  getrlimit(resource) {
    const limits = new BigUint64Array(2); // struct rlimit { rlim_t rlim_cur, rlim_max; }
    const ret = fromLibc(lib().libc.getrlimit(resource, limits));
    return ret < 0 ? ret : { soft: limits[0]!, hard: limits[1]! };
  },
  strerror(errno) {
    const at = lib().libc.strerror(errno);
    return at ? new Deno.UnsafePointerView(at).getCString() : `errno ${errno}`;
  },
  stream: (fd) => new DenoStream(fd),
};
