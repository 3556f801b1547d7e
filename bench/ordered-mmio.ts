#!/usr/bin/env bun
/**
 * Cost per access of the ordered-MMIO stubs (src/sys/bun-ordered-mmio.ts)
 * against the current paths, on an anonymous mapping (no VFIO needed, so it
 * runs natively on the host and in the arm64 guest):
 *   store32 ordered   stub: barrier + one str (arm64 dmb oshst; x86 plain mov)
 *   store32 relaxed   stub: one str
 *   typed-array store Uint32Array element store (today's MappedMemory.write32)
 *   load32 ordered    stub: one ldr + barrier (arm64 dmb oshld)
 *   load32 relaxed    stub: one ldr
 *   ffi read.u32      bun:ffi read.u32 (today's MappedMemory.read32)
 * and, where a C compiler exists (the host), a C loop doing the same with
 * volatile accesses and the same barrier instructions, compiled now into a
 * temp folder. Prints ns per access and each path's ratio to the typed-array
 * store / read.u32 measured in the same run.
 *
 *   bun bench/ordered-mmio.ts [iterations=2000000]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { read } from "bun:ffi";
import { MappedMemory } from "../src/index.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE } from "../src/sys/libc.ts";
import { createOrderedMmio } from "../src/sys/bun-ordered-mmio.ts";

const N = Number(process.argv[2] ?? 2_000_000);
const o = createOrderedMmio();
const mem = MappedMemory.mapAnonymous(65536, MAP_PRIVATE | MAP_ANONYMOUS);
const a = mem.address;
const u32 = new Uint32Array(mem.bytes.buffer, mem.bytes.byteOffset, 16);

function time(fn: () => void): number {
  fn(); // warm up the JIT
  const t0 = Bun.nanoseconds();
  fn();
  return (Bun.nanoseconds() - t0) / N;
}

let sink = 0;
const rows: [string, number][] = [
  ["store32 ordered (stub)", time(() => { for (let i = 0; i < N; i++) o.store32(a, 4, i); })],
  ["store32 relaxed (stub)", time(() => { for (let i = 0; i < N; i++) o.store32Relaxed(a, 4, i); })],
  ["typed-array store", time(() => { for (let i = 0; i < N; i++) u32[1] = i; })],
  ["load32 ordered (stub)", time(() => { let s = 0; for (let i = 0; i < N; i++) s += o.load32(a, 4); sink += s; })],
  ["load32 relaxed (stub)", time(() => { let s = 0; for (let i = 0; i < N; i++) s += o.load32Relaxed(a, 4); sink += s; })],
  ["ffi read.u32", time(() => { let s = 0; for (let i = 0; i < N; i++) s += read.u32(a as never, 4); sink += s; })],
];

const C = String.raw`
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <sys/mman.h>
#if defined(__aarch64__)
#define WB() __asm__ volatile("dmb oshst" ::: "memory")
#define RB() __asm__ volatile("dmb oshld" ::: "memory")
#else
#define WB() __asm__ volatile("" ::: "memory")
#define RB() __asm__ volatile("" ::: "memory")
#endif
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv) {
  long n = atol(argv[1]);
  volatile uint32_t *p = mmap(0, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint32_t s = 0; double t;
  t = now(); for (long i = 0; i < n; i++) { WB(); p[1] = (uint32_t)i; } printf("C writel %.3f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) p[1] = (uint32_t)i; printf("C writel_relaxed %.3f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) { s += p[1]; RB(); } printf("C readl %.3f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) s += p[1]; printf("C readl_relaxed %.3f\n", (now() - t) / n);
  return s == 12345 ? 1 : 0;
}`;

const cc = Bun.which("cc");
if (cc) {
  const dir = mkdtempSync(join(tmpdir(), "bun-vfio-bench-"));
  try {
    writeFileSync(join(dir, "b.c"), C);
    const build = Bun.spawnSync([cc, "-O2", "-o", join(dir, "b"), join(dir, "b.c")]);
    if (build.exitCode !== 0) throw new Error(build.stderr.toString());
    const out = Bun.spawnSync([join(dir, "b"), String(N)]).stdout.toString();
    for (const m of out.matchAll(/^(C \S+) ([\d.]+)$/gm)) rows.push([m[1]!, Number(m[2])]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else rows.push(["C (no cc here)", NaN]);

const base = (name: string) => rows.find((r) => r[0] === name)![1];
console.log(`ordered MMIO cost on ${process.arch}, ${N} accesses each (ns per access; ratio to the current path)`);
for (const [name, ns] of rows) {
  const ref = /store|writel/.test(name) ? base("typed-array store") : base("ffi read.u32");
  console.log(`  ${name.padEnd(24)} ${Number.isNaN(ns) ? "   -" : ns.toFixed(2).padStart(7)} ns  ${Number.isNaN(ns) ? "" : `x${(ns / ref).toFixed(2)}`}`);
}
if (sink === 0.5) console.log(sink);
mem.unmap();
