/**
 * The libc symbol table: plain data, one entry per function with its C
 * prototype beside it. Everything that touches the kernel goes through here.
 *
 * Notes that shaped the declarations (measured on Bun 1.4, x86-64):
 * - `ssize_t`/`off_t` returns use `i64_fast` so small values come back as
 *   numbers; `i64`/`u64` would always give BigInt.
 * - `mmap` returns `i64_fast` because a `ptr` return turns MAP_FAILED into
 *   2^64-1, which a truthiness test misses; we test for -1 instead.
 * - `ioctl` is declared once with a `ptr` third argument: it accepts a
 *   TypedArray/ArrayBuffer or a plain number, so integer-argument ioctls work.
 * - errno is read through `__errno_location()` right after the call, in the
 *   same synchronous block (see ./errno.ts); never dlopen the `errno` symbol.
 */
import { dlopen, FFIType } from "bun:ffi";

const { i32, u32, u64, i64, i64_fast, ptr } = FFIType;

export const libc = dlopen("libc.so.6", {
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
  /** int madvise(void *addr, size_t len, int advice); */
  madvise: { args: [ptr, u64, i32], returns: i32 },
  /** int *__errno_location(void); */
  __errno_location: { args: [], returns: ptr },
  /** char *strerror(int errnum); */
  strerror: { args: [i32], returns: FFIType.cstring },
}).symbols;

/** open(2) flags (x86-64/arm64 generic values). */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;

/** mmap(2) protections and flags. */
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_HUGETLB = 0x40000;
export const MAP_HUGE_SHIFT = 26;

/** eventfd(2) flags. */
export const EFD_CLOEXEC = O_CLOEXEC;
export const EFD_NONBLOCK = O_NONBLOCK;

/** poll(2) events. */
export const POLLIN = 0x1;

/** sysconf(3) names. */
export const _SC_PAGESIZE = 30;

/** getrlimit(2) resources. */
export const RLIMIT_MEMLOCK = 8;

void i64;
