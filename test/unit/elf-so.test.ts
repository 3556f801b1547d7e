/**
 * The in-memory ELF shared object Deno loads its stubs from
 * (src/sys/elf-so.ts): the system's own loader (glibc's dlopen, through
 * bun:ffi) must accept it and resolve every symbol to the stub's code, and
 * calls must do what the instructions say: the getpid system call returns
 * this process's PID, a load reads the bytes stored before it. Also the
 * u32-offset variants of the ordered-MMIO stubs Deno loads this way, at
 * every width. The arm64 guests run this file too (test/vm/arm64-all).
 */
import { afterAll, expect, test } from "bun:test";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { elfHash, sharedObject } from "../../src/sys/elf-so.ts";
import { STUB_NAMES, stubCode, u32OffsetStubCode } from "../../src/sys/machine-code.ts";

const dir = mkdtempSync(join(tmpdir(), "bun-vfio-elf-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const arch = process.arch === "x64" ? "x86_64" : "aarch64";
/** getpid: x86-64 `mov eax, 39; syscall; ret`, arm64 `movz x8, #172; svc #0; ret`. */
const GETPID = process.arch === "x64" ? new Uint8Array([0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3]) : new Uint8Array([0x88, 0x15, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4, 0xc0, 0x03, 0x5f, 0xd6]);

test("the System V hash of known names (\"exit\" worked by hand, \"printf\" the widely quoted value)", () => {
  expect(elfHash("")).toBe(0);
  expect(elfHash("printf")).toBe(0x077905a6);
  expect(elfHash("exit")).toBe(0x0006cf04);
});

test("glibc's dlopen loads it and resolves every symbol; the stubs execute (getpid, loads at 64-bit offsets)", () => {
  const load = stubCode(process.arch).load32Relaxed;
  const names = Array.from({ length: 40 }, (_, i) => `bunvfio_test_${i}`); // enough symbols for hash collisions
  const stubs: Record<string, Uint8Array> = Object.fromEntries(names.map((n, i) => [n, i % 2 ? load : GETPID]));
  const file = join(dir, "stubs.so");
  writeFileSync(file, sharedObject(arch, stubs));
  const lib = dlopen(file, Object.fromEntries(names.map((n, i) => [n, i % 2 ? { args: [FFIType.ptr, FFIType.u64], returns: FFIType.u32 } : { args: [], returns: FFIType.i64_fast }])));
  const words = new Uint32Array([0, 0xcafef00d, 0, 0x12345678]);
  for (const [i, n] of names.entries()) {
    const fn = lib.symbols[n] as unknown as (...a: unknown[]) => number;
    expect(i % 2 ? fn(ptr(words), i % 4 === 1 ? 4 : 12) : fn()).toBe(i % 2 ? (i % 4 === 1 ? 0xcafef00d : 0x12345678) : process.pid);
  }
  lib.close();
});

test("an architecture without an ELF machine number is refused", () => {
  expect(() => sharedObject("riscv64", { f: GETPID })).toThrow(/no ELF machine/);
});

test("u32-offset MMIO stubs: the zero-extending prefix (x86-64 mov esi, esi; arm64 mov w1, w1) before the shared stub bytes", () => {
  const x = u32OffsetStubCode("x64"), a = u32OffsetStubCode("arm64");
  for (const n of STUB_NAMES) {
    expect(Buffer.from(x[n]).toString("hex")).toBe("89f6" + Buffer.from(stubCode("x64")[n]).toString("hex"));
    expect(Buffer.from(a[n]).toString("hex")).toBe("e103012a" + Buffer.from(stubCode("arm64")[n]).toString("hex"));
  }
});

test("u32-offset MMIO stubs loaded from the built library store and load each width at the offset given", () => {
  const u32 = u32OffsetStubCode(process.arch);
  const file = join(dir, "mmio.so");
  writeFileSync(file, sharedObject(arch, Object.fromEntries(STUB_NAMES.map((n) => [`m_${n}`, u32[n]]))));
  const { u8, u16, u32: U32, u64, ptr: P } = FFIType;
  const store = (v: FFIType) => ({ args: [P, U32, v], returns: FFIType.void });
  const load = (r: FFIType) => ({ args: [P, U32], returns: r });
  const lib = dlopen(file, {
    m_store8: store(u8), m_store16: store(u16), m_store32: store(U32), m_store64: store(u64),
    m_load8: load(u8), m_load16: load(u16), m_load32: load(U32), m_load64: load(u64), m_mb: { args: [], returns: FFIType.void },
  });
  const mem = new Uint8Array(4096);
  const m = lib.symbols;
  m.m_store8(ptr(mem), 4001, 0xa5);
  m.m_store16(ptr(mem), 4002, 0xbeef);
  m.m_store32(ptr(mem), 4004, 0xdeadbeef);
  m.m_store64(ptr(mem), 4008, 0x0102030405060708n);
  m.m_mb();
  expect([...mem.subarray(4000, 4016)]).toEqual([0, 0xa5, 0xef, 0xbe, 0xef, 0xbe, 0xad, 0xde, 8, 7, 6, 5, 4, 3, 2, 1]);
  expect([m.m_load8(ptr(mem), 4001), m.m_load16(ptr(mem), 4002), m.m_load32(ptr(mem), 4004), BigInt(m.m_load64(ptr(mem), 4008) as bigint)]).toEqual([0xa5, 0xbeef, 0xdeadbeef, 0x0102030405060708n]);
  lib.close();
});
