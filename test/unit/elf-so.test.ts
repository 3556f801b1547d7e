/**
 * The in-memory ELF shared object Deno loads its stubs from
 * (src/sys/elf-so.ts): the system's own loader (glibc's dlopen, through
 * bun:ffi) must accept it and resolve every symbol to the stub's code, and
 * calls must do what the instructions say: the getpid system call returns
 * this process's PID, a load reads the bytes stored before it.
 */
import { afterAll, expect, test } from "bun:test";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { elfHash, sharedObject } from "../../src/sys/elf-so.ts";
import { stubCode } from "../../src/sys/machine-code.ts";

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
