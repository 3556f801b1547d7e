/**
 * Deno's machine-code stubs as a real shared library: the kernel entries of
 * ./deno-raw-syscall.ts (exact -errno) and the ordered-MMIO stubs Bun uses
 * (./machine-code.ts: `readl`/`writel` with arm64's dmb, x86-64's plain
 * moves, wmb/rmb/mb) laid out as one ELF shared object (./elf-so.ts),
 * written into a memfd and opened with `Deno.dlopen("/proc/self/fd/N")`.
 *
 * Why a library: `Deno.dlopen` symbols get V8 fast calls (~14 ns measured),
 * `Deno.UnsafeFnPointer` calls are a slow op (~1.3 µs). The library maps
 * read+execute from the memfd (never writable and executable at once).
 * Refused by policy (memfd exec denied, `vm.memfd_noexec=2`, SELinux
 * execmem) or failing its self-test (getpid through the stub equals
 * Deno.pid, a load through the stub reads what was stored), it is not used
 * and the caller falls back to the UnsafeFnPointer page.
 */
import { sharedObject } from "./elf-so.ts";
import { u32OffsetStubCode, type StubName } from "./machine-code.ts";
import { SIGNATURES, syscallStubs, type RawSyscalls } from "./deno-raw-syscall.ts";

/** The libc calls needed to build the library. */
export interface MemfdOps {
  /** memfd_create(2): fd or -errno. */
  memfdCreate(name: Uint8Array, flags: number): number;
  /** write(2) of all of `bytes`: bytes written or -errno. */
  write(fd: number, bytes: Uint8Array): number;
  close(fd: number): void;
}

const MFD_CLOEXEC = 1;
/** Linux 6.3+: ask for an executable memfd explicitly (vm.memfd_noexec=1 makes them non-executable by default). */
const MFD_EXEC = 0x10;
const EINVAL = 22;

// Deno passes a `u64` argument fast only as a BigInt (a number takes the slow path: 450 ns against 70
// measured), so the offset is declared `u32` and the stubs zero-extend it (machine-code.ts u32OffsetStubCode).
type Width = "u8" | "u16" | "u32" | "u64";
const STORE = <V extends Width>(v: V) => ({ parameters: ["pointer", "u32", v] as ["pointer", "u32", V], result: "void" }) as const;
const LOAD = <R extends Width>(r: R) => ({ parameters: ["pointer", "u32"] as ["pointer", "u32"], result: r }) as const;
const BARRIER = { parameters: [], result: "void" } as const;
/** The ordered-MMIO stubs' C signatures: `(address, offset[, value])`, offset below 4 GiB. */
const MMIO_SIGNATURES = {
  store8: STORE("u8"), store16: STORE("u16"), store32: STORE("u32"), store64: STORE("u64"),
  store8Relaxed: STORE("u8"), store16Relaxed: STORE("u16"), store32Relaxed: STORE("u32"), store64Relaxed: STORE("u64"),
  load8: LOAD("u8"), load16: LOAD("u16"), load32: LOAD("u32"), load64: LOAD("u64"),
  load8Relaxed: LOAD("u8"), load16Relaxed: LOAD("u16"), load32Relaxed: LOAD("u32"), load64Relaxed: LOAD("u64"),
  wmb: BARRIER, rmb: BARRIER, mb: BARRIER,
} as const satisfies Record<StubName, Deno.ForeignFunction>;

/** The ordered-MMIO stubs as Deno symbols. */
export type DenoMmio = Deno.DynamicLibrary<typeof MMIO_SIGNATURES>["symbols"];

/** What the library gives the Deno Sys. */
export interface StubLibrary {
  raw: RawSyscalls;
  mmio: DenoMmio;
}

const encoder = new TextEncoder();

/** Writes the library into a memfd; its fd, or undefined. */
function memfdWith(bytes: Uint8Array, ops: MemfdOps): number | undefined {
  const name = encoder.encode("bun-vfio-stubs\0");
  let fd = ops.memfdCreate(name, MFD_CLOEXEC | MFD_EXEC);
  if (fd === -EINVAL) fd = ops.memfdCreate(name, MFD_CLOEXEC); // before Linux 6.3: no MFD_EXEC, memfds are executable
  if (fd < 0) return undefined;
  if (ops.write(fd, bytes) !== bytes.length) {
    ops.close(fd);
    return undefined;
  }
  return fd;
}

/**
 * Builds, loads and self-tests the library for this CPU, or returns
 * undefined (unknown CPU, memfd or dlopen refused, self-test failed).
 */
export function loadStubLibrary(arch: string, ops: MemfdOps): StubLibrary | undefined {
  const sys = syscallStubs(arch);
  if (!sys) return undefined;
  const mmio = u32OffsetStubCode(arch === "x86_64" ? "x64" : "arm64");
  const stubs: Record<string, Uint8Array> = {};
  for (const [name, code] of Object.entries(sys)) stubs[`bunvfio_sys_${name}`] = code;
  for (const [name, code] of Object.entries(mmio)) stubs[`bunvfio_mmio_${name}`] = code;
  const fd = memfdWith(sharedObject(arch, stubs), ops);
  if (fd === undefined) return undefined;
  try {
    const sysDefs = Object.fromEntries(Object.entries(SIGNATURES).map(([name, sig]) => [name, { ...sig, name: `bunvfio_sys_${name === "ioctlInt" ? "ioctl" : name}` }]));
    const mmioDefs = Object.fromEntries(Object.entries(MMIO_SIGNATURES).map(([name, sig]) => [name, { ...sig, name: `bunvfio_mmio_${name}` }]));
    const raw = Deno.dlopen(`/proc/self/fd/${fd}`, sysDefs as unknown as typeof SIGNATURES).symbols as unknown as RawSyscalls;
    const lib = Deno.dlopen(`/proc/self/fd/${fd}`, mmioDefs as unknown as typeof MMIO_SIGNATURES).symbols;
    if (Number(raw.getpid()) !== Deno.pid) return undefined;
    const probe = new Uint32Array([0, 0x5a5aa5a5]);
    if (lib.load32(Deno.UnsafePointer.of(probe), 4) !== 0x5a5aa5a5) return undefined;
    return { raw, mmio: lib };
  } catch {
    return undefined; // dlopen refused (exec denied on the memfd, a scoped --allow-ffi)
  } finally {
    ops.close(fd); // the mapping keeps the library alive
  }
}
