/**
 * Linux constants the library passes to system calls (the generic values
 * shared by x86-64 and arm64). Pure data: no runtime, no FFI.
 */

/** open(2) flags. */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;

/** mmap(2) protections and flags. */
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
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

/** errno values the library tests for. */
export const EAGAIN = 11;
