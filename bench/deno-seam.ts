#!/usr/bin/env bun
/**
 * Deno beside Bun and C in the same run, for the native micro-benchmarks of
 * `bun run bench` (no VFIO needed): a 32-bit load and store on mapped
 * memory, a trapped 32-bit pread, an ioctl, and the eventfd wake (a C
 * writer in another process; median and p99 of 1800 after 200 warm-up).
 * Each round runs C (./register-access.ts C_NATIVE and the C poll-thread
 * baseline of ./eventfd-wake.ts), then ./seam-paths.ts under Bun, under
 * Deno (the default: kernel entries and MMIO stubs from the memfd stub
 * library), Deno with BUN_VFIO_DENO_STUBS=page (kernel entries through
 * UnsafeFnPointer) and Deno with BUN_VFIO_DENO_ERRNO=libc (libc + errno,
 * no stubs); each cell is the best of the rounds (the
 * machine is shared), printed as a Markdown table with ratios to C.
 *
 *   bun bench/deno-seam.ts [rounds=3] [iterations=2000000]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { baseline, buildWakeBinary, stats } from "./eventfd-wake.ts";
import { C_NATIVE, runCProgram } from "./register-access.ts";

const ROOT = join(import.meta.dir, "..");
const DENO = join(ROOT, "node_modules", ".bin", "deno");
const rounds = Number(process.argv[2] ?? 3);
const iterations = Number(process.argv[3] ?? 2_000_000);
const SAMPLES = 2000; // eventfd-wake.ts's stats() drops its 200 warm-up samples

type Cells = Record<string, number>;
const COLUMNS = {
  "Bun": { argv: [process.execPath], env: {} },
  "Deno": { argv: [DENO, "run", "-A"], env: {} },
  "Deno, stub page": { argv: [DENO, "run", "-A"], env: { BUN_VFIO_DENO_STUBS: "page" } },
  "Deno, libc errno": { argv: [DENO, "run", "-A"], env: { BUN_VFIO_DENO_ERRNO: "libc" } },
} as const;
const ROWS: [key: string, label: string, unit: "ns" | "us"][] = [
  ["load32", "32-bit load from mapped memory (`MappedMemory.read32`)", "ns"],
  ["store32", "32-bit store to mapped memory (`MappedMemory.write32`)", "ns"],
  ["pread32", "32-bit `pread` (`Region.read32`, /dev/zero)", "ns"],
  ["ioctl", "an `ioctl` through `OwnedFd` (FIONBIO)", "ns"],
  ["wake-median", "eventfd wake, median (`EventWaiter.next()`)", "us"],
  ["wake-p99", "eventfd wake, p99", "us"],
];

function child(column: keyof typeof COLUMNS, binary: string): Cells {
  const { argv, env } = COLUMNS[column];
  const p = Bun.spawnSync([...argv, join(ROOT, "bench", "seam-paths.ts"), binary, String(iterations), String(SAMPLES)], {
    cwd: ROOT, env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...env }, stdout: "pipe", stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(`${column}: seam-paths.ts failed: ${p.stderr.toString()}`);
  const { paths, wakeNs } = JSON.parse(p.stdout.toString()) as { paths: Cells; wakeNs: number[] };
  const w = stats(wakeNs);
  return { ...paths, "wake-median": w.median, "wake-p99": w.p99 };
}

const best = (into: Cells, from: Cells) => {
  for (const [k, v] of Object.entries(from)) into[k] = Math.min(into[k] ?? Infinity, v);
};

const dir = mkdtempSync(join(tmpdir(), "bun-vfio-deno-seam-"));
try {
  const binary = buildWakeBinary(dir);
  const results: Record<string, Cells> = { C: {}, ...Object.fromEntries(Object.keys(COLUMNS).map((c) => [c, {}])) };
  for (let r = 0; r < rounds; r++) {
    process.stderr.write(`deno-seam: round ${r + 1}/${rounds}\n`);
    const c = runCProgram(C_NATIVE, [String(iterations)]);
    const w = stats(baseline(binary));
    best(results.C!, { ...c, "wake-median": w.median, "wake-p99": w.p99 });
    for (const column of Object.keys(COLUMNS) as (keyof typeof COLUMNS)[]) best(results[column]!, child(column, binary));
  }
  const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const columns = Object.keys(COLUMNS);
  console.log(`| path | C | ${columns.map((c) => `${c} | ratio`).join(" | ")} |`);
  console.log(`|---|---|${columns.map(() => "---|---").join("|")}|`);
  for (const [key, label, unit] of ROWS) {
    const c = results.C![key]!;
    const cells = columns.map((col) => `${fmt(results[col]![key]!)} ${unit} | ${(results[col]![key]! / c).toFixed(2)}x`);
    console.log(`| ${label} | ${fmt(c)} ${unit} | ${cells.join(" | ")} |`);
  }
  console.log(`\nbest of ${rounds} rounds, ${iterations} iterations a path, ${SAMPLES - 200} wake samples; Bun ${Bun.version}, ${new TextDecoder().decode(Bun.spawnSync([DENO, "--version"]).stdout).split("\n")[0]}, ${navigator.hardwareConcurrency} CPUs`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
