/**
 * Raw kernel entries for Deno: a few bytes of machine code per system call
 * (load the call number, `syscall`/`svc #0`, return), written at run time
 * into one anonymous page that is then made read+execute. Each returns what
 * the kernel returned: a result or `-errno`, in a register, with no errno
 * variable in between.
 *
 * Why: on Deno 2.9 errno read through `__errno_location()` right after a
 * failing libc call was stale in 7 of ~140 processes (DESIGN.md), so an
 * error code read from errno is a guess. The kernel's own return value is
 * not. If the page cannot be made executable (W^X policies such as SELinux
 * `execmem` denial), or the self-test below fails, `rawSyscalls()` returns
 * undefined and the caller falls back to libc + errno.
 *
 * Stubs follow the C calling convention, so they are called like the libc
 * function of the same shape; only open(2) differs (openat with AT_FDCWD).
 */

/** Linux system call numbers for the stubs (x86-64: arch/x86/entry/syscalls; arm64: the generic table). */
const NUMBERS = {
  x64: { read: 0, write: 1, close: 3, mmap: 9, mprotect: 10, munmap: 11, ioctl: 16, pread64: 17, pwrite64: 18, getpid: 39, openat: 257, eventfd2: 290 },
  arm64: { read: 63, write: 64, close: 57, mmap: 222, mprotect: 226, munmap: 215, ioctl: 29, pread64: 67, pwrite64: 68, getpid: 172, openat: 56, eventfd2: 19 },
} as const;

type Name = keyof (typeof NUMBERS)["x64"];

/** x86-64: mov eax, nr; mov r10, rcx (4th C argument -> 4th syscall argument); syscall; ret. */
function x64Stub(nr: number): number[] {
  return [0xb8, nr & 0xff, (nr >> 8) & 0xff, 0, 0, 0x49, 0x89, 0xca, 0x0f, 0x05, 0xc3];
}

/** arm64: movz x8, #nr; svc #0; ret (arguments are already in x0-x5, the result comes back in x0). */
function arm64Stub(nr: number): number[] {
  const words = [0xd2800008 | (nr << 5), 0xd4000001, 0xd65f03c0];
  return words.flatMap((w) => [w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, (w >>> 24) & 0xff]);
}

/** The C signature of each stub (`ioctlInt` is the `ioctl` stub with an integer third argument). */
export const SIGNATURES = {
  /** long read(int fd, void *buf, size_t count) */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** long write(int fd, const void *buf, size_t count) */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** long close(int fd) */
  close: { parameters: ["i32"], result: "isize" },
  /** long mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off): an address or -errno */
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "isize" },
  /** long mprotect(void *addr, size_t len, int prot) */
  mprotect: { parameters: ["pointer", "usize", "i32"], result: "isize" },
  /** long munmap(void *addr, size_t len) */
  munmap: { parameters: ["pointer", "usize"], result: "isize" },
  /** long ioctl(int fd, unsigned int cmd, void *arg) */
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "isize" },
  /** long ioctl(int fd, unsigned int cmd, unsigned long arg) */
  ioctlInt: { parameters: ["i32", "u64", "u64"], result: "isize" },
  /** long pread64(int fd, void *buf, size_t count, off_t pos) */
  pread64: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  /** long pwrite64(int fd, const void *buf, size_t count, off_t pos) */
  pwrite64: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  /** long getpid(void) (the self-test) */
  getpid: { parameters: [], result: "isize" },
  /** long openat(int dirfd, const char *path, int flags, umode_t mode) */
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "isize" },
  /** long eventfd2(unsigned int count, int flags) */
  eventfd2: { parameters: ["u32", "i32"], result: "isize" },
} as const;

type Fn<S extends Deno.UnsafeCallbackDefinition | Deno.ForeignFunction> = Deno.UnsafeFnPointer<S>["call"];
/** One callable per system call, returning the kernel's result or -errno. */
export type RawSyscalls = { [K in keyof typeof SIGNATURES]: Fn<(typeof SIGNATURES)[K]> };

/** What the caller gives us from libc to build the page. */
export interface PageOps {
  /** mmap(2) of `length` anonymous read+write bytes; null when refused. */
  mapAnonymous(length: number): Deno.PointerObject | null;
  /** mprotect(2) to read+execute; true on success. */
  makeExecutable(page: Deno.PointerObject, length: number): boolean;
  unmap(page: Deno.PointerObject, length: number): void;
}

const STUB_SPACING = 16;

/**
 * The machine code of each stub for `arch` (`Deno.build.arch`), keyed like
 * {@link SIGNATURES} minus `ioctlInt` (it calls the `ioctl` stub); undefined
 * for a CPU without stubs.
 */
export function syscallStubs(arch: string): Record<Exclude<keyof typeof SIGNATURES, "ioctlInt">, Uint8Array> | undefined {
  const numbers = arch === "x86_64" ? NUMBERS.x64 : arch === "aarch64" ? NUMBERS.arm64 : undefined;
  if (!numbers) return undefined;
  const stub = arch === "x86_64" ? x64Stub : arm64Stub;
  return Object.fromEntries((Object.keys(numbers) as Name[]).map((n) => [n, new Uint8Array(stub(numbers[n]))])) as Record<Name, Uint8Array>;
}

/**
 * Builds the stubs for this CPU, or returns undefined (unknown CPU, page not
 * executable, or getpid through the stub disagreeing with Deno.pid).
 */
export function rawSyscalls(arch: string, ops: PageOps): RawSyscalls | undefined {
  const numbers = arch === "x86_64" ? NUMBERS.x64 : arch === "aarch64" ? NUMBERS.arm64 : undefined;
  if (!numbers) return undefined;
  const stub = arch === "x86_64" ? x64Stub : arm64Stub;
  const names = Object.keys(SIGNATURES) as (keyof typeof SIGNATURES)[];
  const length = 4096;
  const page = ops.mapAnonymous(length);
  if (!page) return undefined;
  const code = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(page, length));
  names.forEach((name, i) => code.set(stub(numbers[(name === "ioctlInt" ? "ioctl" : name) as Name]), i * STUB_SPACING));
  if (!ops.makeExecutable(page, length)) {
    ops.unmap(page, length);
    return undefined;
  }
  const calls = {} as Record<string, unknown>;
  names.forEach((name, i) => {
    const fn = new Deno.UnsafeFnPointer(Deno.UnsafePointer.offset(page, i * STUB_SPACING)!, SIGNATURES[name] as Deno.ForeignFunction);
    calls[name] = fn.call.bind(fn);
  });
  const raw = calls as RawSyscalls;
  if (Number(raw.getpid()) !== Deno.pid) return undefined; // the page stays mapped: cheap, and nothing else may reuse it
  return raw;
}
