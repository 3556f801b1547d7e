/**
 * Ordered device-memory accessors for Bun: the stubs of machine-code.ts
 * copied into a private anonymous page (written while PROT_READ|PROT_WRITE,
 * then mprotect'ed to PROT_READ|PROT_EXEC, never writable and executable at
 * once) and called through bun:ffi `CFunction`. No native build step.
 *
 * Each call is one FFI call (a few ns): an opaque call the JIT cannot look
 * into, so two identical back-to-back stores stay two stores and no load is
 * hoisted out of a polling loop.
 */
import { CFunction, dlopen, FFIType, toArrayBuffer, type Pointer } from "bun:ffi";
import { layoutStubs, type StubName } from "./machine-code.ts";

const { i32, u64, i64_fast, ptr } = FFIType;

/** The page-management calls this loader needs, opened on first use (never at import). */
const MM_SYMBOLS = {
  /** void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off); */
  mmap: { args: [ptr, u64, i32, i32, i32, u64], returns: i64_fast },
  /** int mprotect(void *addr, size_t len, int prot); */
  mprotect: { args: [ptr, u64, i32], returns: i32 },
  /** long sysconf(int name); */
  sysconf: { args: [i32], returns: i64_fast },
} as const;
let opened: ReturnType<typeof dlopen<typeof MM_SYMBOLS>> | undefined;
const mmLib = () => (opened ??= dlopen("libc.so.6", MM_SYMBOLS));

const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const _SC_PAGESIZE = 30;

/**
 * Accessors for memory at `address + offset` (a BAR mapping or any mapped
 * memory). `storeN`/`loadN` order like Linux's `writel`/`readl`;
 * `*Relaxed` like `writel_relaxed`/`readl_relaxed` (one access, no barrier,
 * for batching between explicit barriers); `wmb`/`rmb`/`mb` are Linux's
 * mandatory barriers. Values: `number` up to 32 bits, `bigint` for 64.
 */
export interface OrderedMmio {
  /** Architecture the stubs were built for (`process.arch`). */
  readonly arch: string;
  /** Address of the read+exec code page (for tests and diagnostics). */
  readonly codeAddress: number;
  /** The exact bytes in the code page. */
  readonly code: Uint8Array;
  /** Barrier (arm64 `dmb oshst`) then one 8-bit store. */
  store8(address: number, offset: number, value: number): void;
  /** Barrier then one 16-bit store. */
  store16(address: number, offset: number, value: number): void;
  /** Barrier then one 32-bit store (`writel`). */
  store32(address: number, offset: number, value: number): void;
  /** Barrier then one 64-bit store (`writeq`). */
  store64(address: number, offset: number, value: bigint): void;
  /** One 8-bit store, no barrier. */
  store8Relaxed(address: number, offset: number, value: number): void;
  /** One 16-bit store, no barrier. */
  store16Relaxed(address: number, offset: number, value: number): void;
  /** One 32-bit store, no barrier (`writel_relaxed`). */
  store32Relaxed(address: number, offset: number, value: number): void;
  /** One 64-bit store, no barrier. */
  store64Relaxed(address: number, offset: number, value: bigint): void;
  /** One 8-bit load, then a barrier (arm64 `dmb oshld`). */
  load8(address: number, offset: number): number;
  /** One 16-bit load, then a barrier. */
  load16(address: number, offset: number): number;
  /** One 32-bit load, then a barrier (`readl`). */
  load32(address: number, offset: number): number;
  /** One 64-bit load, then a barrier (`readq`). */
  load64(address: number, offset: number): bigint;
  /** One 8-bit load, no barrier. */
  load8Relaxed(address: number, offset: number): number;
  /** One 16-bit load, no barrier. */
  load16Relaxed(address: number, offset: number): number;
  /** One 32-bit load, no barrier (`readl_relaxed`). */
  load32Relaxed(address: number, offset: number): number;
  /** One 64-bit load, no barrier. */
  load64Relaxed(address: number, offset: number): bigint;
  /** Linux `wmb()`: arm64 `dsb st`, x86-64 `sfence`. */
  wmb(): void;
  /** Linux `rmb()`: arm64 `dsb ld`, x86-64 `lfence`. */
  rmb(): void;
  /** Linux `mb()`: arm64 `dsb sy`, x86-64 `mfence`. */
  mb(): void;
}

const STORE = (v: FFIType): StubSignature => ({ args: [ptr, u64, v], returns: FFIType.void });
const LOAD = (r: FFIType): StubSignature => ({ args: [ptr, u64], returns: r });
const SIGNATURES: Record<StubName, StubSignature> = {
  store8: STORE(FFIType.u8), store16: STORE(FFIType.u16), store32: STORE(FFIType.u32), store64: STORE(FFIType.u64),
  store8Relaxed: STORE(FFIType.u8), store16Relaxed: STORE(FFIType.u16), store32Relaxed: STORE(FFIType.u32), store64Relaxed: STORE(FFIType.u64),
  load8: LOAD(FFIType.u8), load16: LOAD(FFIType.u16), load32: LOAD(FFIType.u32), load64: LOAD(FFIType.u64),
  load8Relaxed: LOAD(FFIType.u8), load16Relaxed: LOAD(FFIType.u16), load32Relaxed: LOAD(FFIType.u32), load64Relaxed: LOAD(FFIType.u64),
  wmb: { args: [], returns: FFIType.void }, rmb: { args: [], returns: FFIType.void }, mb: { args: [], returns: FFIType.void },
};

let cached: OrderedMmio | undefined;

/** A C signature for bun:ffi. */
export type StubSignature = { args: FFIType[]; returns: FFIType };

/**
 * Copy `code` into a fresh anonymous page (mmap PROT_READ|PROT_WRITE, copy,
 * mprotect PROT_READ|PROT_EXEC: never W+X) and wrap each entry point in a
 * bun:ffi `CFunction`. The page is never unmapped.
 * @param code machine code for this CPU
 * @param entries name to [offset in `code`, signature]
 * @throws Error when mmap or mprotect fails (a policy forbidding executable anonymous memory)
 */
export function loadMachineCode<K extends string>(code: Uint8Array, entries: Record<K, [number, StubSignature]>): { base: number; fns: Record<K, (...a: any[]) => any> } {
  const page = Number(mmLib().symbols.sysconf(_SC_PAGESIZE));
  const len = Math.ceil(code.length / page) * page;
  const base = Number(mmLib().symbols.mmap(null, BigInt(len), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n));
  if (base === -1) throw new Error("ordered MMIO: mmap of the code page failed");
  new Uint8Array(toArrayBuffer(base as Pointer, 0, len)).set(code);
  if (mmLib().symbols.mprotect(base as Pointer, BigInt(len), PROT_READ | PROT_EXEC) !== 0) {
    throw new Error("ordered MMIO: mprotect(PROT_READ|PROT_EXEC) of the code page failed (a W^X policy forbidding executable anonymous memory?)");
  }
  const fns = {} as Record<K, (...a: any[]) => any>;
  for (const name of Object.keys(entries) as K[]) {
    const [offset, sig] = entries[name];
    fns[name] = CFunction({ ptr: (base + offset) as Pointer, ...sig }) as unknown as (...a: any[]) => any;
  }
  return { base, fns };
}

/**
 * Build (once per process) the ordered accessors for this CPU from
 * machine-code.ts's stubs (see {@link loadMachineCode}).
 * @throws Error when the architecture has no stubs (x64 and arm64 only) or mmap/mprotect fail
 */
export function createOrderedMmio(): OrderedMmio {
  if (cached) return cached;
  const { code, offsets } = layoutStubs(process.arch);
  const entries = {} as Record<StubName, [number, StubSignature]>;
  for (const name of Object.keys(offsets) as StubName[]) entries[name] = [offsets[name], SIGNATURES[name]];
  const { base, fns } = loadMachineCode(code, entries);
  cached = { arch: process.arch, codeAddress: base, code, ...(fns as unknown as Omit<OrderedMmio, "arch" | "codeAddress" | "code">) };
  return cached;
}
