#!/usr/bin/env bun
/**
 * `bun run bench`: every benchmark of the project in one table, each
 * TypeScript figure beside a baseline measured in the same run, written
 * to bench/results.json.
 *
 *  1. native (this host, no VFIO): ioctl, pread, mapped load/store, eventfd
 *     wake, against C compiled now with cc (bench/register-access.ts,
 *     bench/eventfd-wake.ts);
 *  2. in a QEMU guest (TCG) with an nvme that has a CMB: VFIO micro-benchmarks
 *     against C (bench/guest-micro.*), then 4 KiB random I/O through the
 *     TypeScript driver (examples/nvme), the C userspace driver
 *     (bench/nvme-driver.c) and the guest kernel's nvme driver with fio
 *     (bench/guest.ts).
 *
 *   bun bench/run.ts [--quick] [--native-only]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runGuest, type Profile } from "../sandbox/index.ts";
import { ensureKernel } from "../sandbox/kernel.ts";
import { resolveModules } from "../sandbox/modules.ts";
import { cacheDir } from "../sandbox/paths.ts";
import { ensureHostTools, xzDecompressCommand } from "../sandbox/tools.ts";
import { baseline, buildWakeBinary, stats, viaStream } from "./eventfd-wake.ts";
import { libraryNativePaths } from "./native-paths.ts";
import { C_NATIVE, runCProgram } from "./register-access.ts";
import { ensureFio } from "./setup.ts";
import { renderTable, type BenchResults } from "./table.ts";

const quick = process.argv.includes("--quick");
const nativeOnly = process.argv.includes("--native-only");
const ROOT = join(import.meta.dir, "..");

/** The guest: one nvme with a 16 MiB controller memory buffer (BAR2) and a 256 MiB sparse image. */
const BENCH_PROFILE: Profile = {
  name: "bench",
  description: "bun run bench: one nvme with a CMB on vfio-pci",
  intremap: true,
  devices: [{
    name: "nvme", vendor: "1b36", device: "0010", vfio: true,
    qemu: ["-drive", "if=none,id=nvmb,format=raw,file={tmp}/nvme-bench.img", "-device", "nvme,serial=bunvfiobench,drive=nvmb,cmb_size_mb=16"],
  }],
  scratch: { "nvme-bench.img": 256 },
  // The sandbox's kernel has nvme built in: its poll queue comes from the command line (a module gets it from insmod in bench/guest.ts).
  kernelArgs: ["nvme.poll_queues=1"],
};

function say(s: string): void {
  process.stderr.write(`bench: ${s}\n`);
}

function compile(dir: string, name: string): void {
  const p = Bun.spawnSync(["cc", "-O2", "-o", join(dir, name), join(import.meta.dir, `${name}.c`)], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`cc ${name}.c failed: ${p.stderr.toString()}`);
}

const results: BenchResults = { machine: machine(), date: new Date().toISOString() };

say("native paths (this host, no VFIO)");
const nativeC = runCProgram(C_NATIVE, [String(quick ? 200_000 : 2_000_000)]);
const nativeTs = libraryNativePaths(quick ? 200_000 : 2_000_000);
const wakeDir = mkdtempSync(join(cacheDir(), "bench-wake-"));
try {
  const binary = buildWakeBinary(wakeDir);
  const c = stats(baseline(binary));
  const ts = stats(await viaStream(binary));
  results.native = { c: { ...nativeC, "wake-median": c.median, "wake-p99": c.p99 }, ts: { ...nativeTs, "wake-median": ts.median, "wake-p99": ts.p99 } };
} finally {
  rmSync(wakeDir, { recursive: true, force: true });
}

if (!nativeOnly) {
  await ensureFio();
  const tools = await ensureHostTools();
  const kernel = await ensureKernel();
  // C and modules go to a folder the guest sees at the same path (the host's / is its root), not /tmp (the guest's own tmpfs).
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), "bench-"));
  try {
    compile(work, "guest-micro");
    compile(work, "nvme-driver");
    const modulesDir = join(work, "modules");
    mkdirSync(modulesDir);
    const modules = await resolveModules(kernel.modulesDir, xzDecompressCommand(tools.busybox), ["nvme"]);
    for (const m of modules) writeFileSync(join(modulesDir, `${m.name}.ko`), m.data);
    writeFileSync(join(modulesDir, "order"), `${modules.map((m) => m.name).join("\n")}\n`);
    const outDir = join(work, "out");
    say(`guest run (TCG): micro-benchmarks, then NVMe through C, TypeScript and the kernel (${quick ? "quick" : "full"}; several minutes)`);
    const r = await runGuest({
      profile: BENCH_PROFILE,
      command: ["bun", "bench/guest.ts"],
      cwd: ROOT,
      env: { BENCH_BIN: work, BENCH_MODULES: modulesDir, BENCH_BUSYBOX: tools.busybox, BENCH_QUICK: quick ? "1" : "0" },
      outDir,
      timeoutMs: 45 * 60_000,
      onOutput: (line) => process.stderr.write(`  ${line}\n`),
    });
    try {
      results.guest = JSON.parse(readFileSync(join(outDir, "bench.json"), "utf8"));
    } catch {
      results.guestError = `no results from the guest (status ${r.status}${r.failure ? `: ${r.failure}` : ""}; console log ${r.consoleLog})`;
    }
    if (r.status !== 0) results.guestError ??= `the guest run ended with status ${r.status}${r.failure ? `: ${r.failure}` : ""} (console log ${r.consoleLog})`;
    results.guestKernel = kernel.version;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const table = renderTable(results);
console.log(table.text);
results.rows = table.rows;
writeFileSync(join(import.meta.dir, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
say("wrote bench/results.json");

function machine(): string {
  const cpu = readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
  return `${cpu}, ${navigator.hardwareConcurrency} CPUs, Linux ${readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}, Bun ${Bun.version}`;
}
