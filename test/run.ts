#!/usr/bin/env bun
/**
 * The whole test suite (`npm test`): host unit tests, then for each sandbox
 * profile a QEMU guest running that profile's guest suites with real
 * vfio-pci. Prints a per-suite summary; the last line is always
 * `tests: N passed, N failed[, N skipped]`. Exits 1 when anything failed,
 * including a suite that could not run (never a silent skip).
 *
 * Deno: `unit:deno` (deno check of the library, then test/deno on the
 * host) and `guest:remap:deno` (the public-API guest suites of
 * DENO_GUEST_FILES, the same files, under `deno test` through the
 * bun:test shim in test/deno/bun-test.ts) run with the unit tests and the
 * remap profile.
 *
 *   bun test/run.ts [--unit-only] [--profile NAME]... [--no-deno] [-t PATTERN] [--verbose]
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GUEST_RESULTS_DIR, kernelHighlights, PROFILES, profileTestDirs, runGuest, SandboxError } from "../sandbox/index.ts";
import { countsOf, type Counts } from "./harness/counts.ts";

const ROOT = join(import.meta.dir, "..");
/** Time a guest's `bun test` may run. */
const GUEST_TIMEOUT_MS = 10 * 60_000;
/** Per-test timeout inside the guest (TCG is slower than the host). */
const GUEST_TEST_TIMEOUT_MS = 60_000;
/** The Deno binary of the `deno` devDependency (the guest sees the host's root, so the same path). */
const DENO = join(ROOT, "node_modules/.bin/deno");
/** The profile whose guest suites also run under Deno. */
const DENO_PROFILE = "remap";
/** Guest suites that exercise the public API, run under Deno too (same files). */
const DENO_GUEST_FILES = ["test/vm/common", "test/vm/remap/core.test.ts", "test/vm/remap/bar.test.ts", "test/vm/remap/irq.test.ts",
  "test/vm/remap/dma.test.ts", "test/vm/remap/examples.test.ts"];
/** Deno's environment: a writable cache (the guest's root is read-only), no update check. */
const DENO_ENV = { DENO_DIR: "/tmp/deno-dir", DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

const HELP = `Usage: bun test/run.ts [options] [PATTERN]

Runs test/unit on the host, then test/vm/common + test/vm/<profile> in a
QEMU guest per profile (see bun src/cli/main.ts sandbox --list-profiles).

  --unit-only          host unit tests only
  --no-deno            skip the Deno suites (unit:deno, guest:remap:deno)
  --profile NAME       only this guest profile (repeatable)
  -t, --test-name-pattern PATTERN   only tests whose name matches (also a bare PATTERN)
  --verbose            show the guests' kernel boot messages
  -h, --help           this text`;

interface Args {
  unitOnly: boolean;
  deno: boolean;
  profiles: string[];
  pattern?: string;
  verbose: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { unitOnly: false, deno: true, profiles: [], verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const key = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      const v = arg.startsWith("--") && eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (v === undefined) usage(`${key} needs a value`);
      return v;
    };
    if (key === "-h" || key === "--help") {
      console.log(HELP);
      process.exit(0);
    } else if (key === "--unit-only") a.unitOnly = true;
    else if (key === "--no-deno") a.deno = false;
    else if (key === "--verbose") a.verbose = true;
    else if (key === "--profile") {
      const p = value();
      if (!PROFILES[p]) usage(`unknown profile "${p}" (known: ${Object.keys(PROFILES).join(", ")})`);
      a.profiles.push(p);
    } else if (key === "-t" || key === "--test-name-pattern") a.pattern = value();
    else if (!arg.startsWith("-") && a.pattern === undefined) a.pattern = arg;
    else usage(`unknown argument ${arg}`);
  }
  if (a.profiles.length === 0) a.profiles = Object.keys(PROFILES);
  return a;
}

function usage(msg: string): never {
  console.error(`test/run.ts: ${msg}\n\n${HELP}`);
  process.exit(2);
}

/** One line of the summary. */
interface SuiteResult {
  name: string;
  counts: Counts;
  ms: number;
  note?: string;
}

function hasTests(dir: string): boolean {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return false;
  return readdirSync(abs, { recursive: true }).some((f) => String(f).endsWith(".test.ts"));
}

function banner(text: string): void {
  process.stderr.write(`\n=== ${text} ===\n`);
}

/** Runs a host command, echoing its output; returns the output and exit status. */
async function runHost(cmd: string[], env: Record<string, string | undefined>): Promise<{ output: string; status: number }> {
  const proc = Bun.spawn(cmd, { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe", env });
  let output = "";
  const tee = async (stream: ReadableStream<Uint8Array>, sink: NodeJS.WriteStream): Promise<void> => {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      output += dec.decode(chunk, { stream: true });
      sink.write(chunk);
    }
  };
  const [, , status] = await Promise.all([tee(proc.stdout, process.stdout), tee(proc.stderr, process.stderr), proc.exited]);
  return { output, status };
}

/** Deno's JUnit root has no `skipped`: add it from the suites' `disabled` (ignored tests). */
function denoJunit(xml: string | null): string | null {
  if (!xml) return xml;
  const skipped = [...xml.matchAll(/<testsuite\b[^>]*\bdisabled="(\d+)"/g)].reduce((n, m) => n + Number(m[1]), 0);
  return xml.replace(/<testsuites\b/, `<testsuites skipped="${skipped}"`);
}

/** `deno check` of the library, then test/deno (the Deno Sys on real fds and memory) on the host. */
async function runDenoUnit(args: Args, work: string): Promise<SuiteResult> {
  const t0 = performance.now();
  banner("unit tests under Deno (host)");
  const env = { ...process.env, ...DENO_ENV, DENO_DIR: undefined, BUN_VFIO_SANDBOX: undefined };
  if (!existsSync(DENO)) return { name: "unit:deno", counts: { passed: 0, failed: 1, skipped: 0 }, ms: 0, note: `${DENO} is missing: run npm install` };
  const check = await runHost([DENO, "check", "src/index.ts", "src/sys/runtime-deno.ts", "examples"], env);
  if (check.status !== 0) return { name: "unit:deno", counts: { passed: 0, failed: 1, skipped: 0 }, ms: performance.now() - t0, note: "deno check of src/ and examples/ failed" };
  const junit = join(work, "unit-deno.xml");
  const r = await runHost([DENO, "test", "-A", `--junit-path=${junit}`, ...(args.pattern ? [`--filter=${args.pattern}`] : []), "test/deno"], env);
  const { counts, note } = countsOf(denoJunit(existsSync(junit) ? readFileSync(junit, "utf8") : null), r.output, r.status);
  return { name: "unit:deno", counts, ms: performance.now() - t0, note };
}

async function runUnit(args: Args, work: string): Promise<SuiteResult> {
  const t0 = performance.now();
  banner("unit tests (host)");
  if (!hasTests("test/unit")) return { name: "unit", counts: { passed: 0, failed: 0, skipped: 0 }, ms: 0, note: "no test files in test/unit" };
  const junit = join(work, "unit.xml");
  const cmd = [process.execPath, "test", "--reporter=junit", `--reporter-outfile=${junit}`,
    ...(args.pattern ? ["-t", args.pattern] : []), "./test/unit"];
  const { output, status } = await runHost(cmd, { ...process.env, BUN_VFIO_SANDBOX: undefined });
  const { counts, note } = countsOf(existsSync(junit) ? readFileSync(junit, "utf8") : null, output, status);
  return { name: "unit", counts, ms: performance.now() - t0, note };
}

/** Set once a guest could not be prepared (QEMU or kernel missing): later profiles fail with the same reason. */
let prepareError: string | undefined;

async function runProfile(name: string, args: Args, work: string, runtime: "bun" | "deno" = "bun"): Promise<SuiteResult> {
  const t0 = performance.now();
  const suite = runtime === "bun" ? `guest:${name}` : `guest:${name}:${runtime}`;
  banner(`guest tests, profile ${name}${runtime === "bun" ? "" : ` under ${runtime}`}`);
  const dirs = runtime === "bun" ? profileTestDirs(PROFILES[name]!).filter(hasTests) : DENO_GUEST_FILES;
  if (dirs.length === 0) return { name: suite, counts: { passed: 0, failed: 0, skipped: 0 }, ms: 0, note: "no guest test files" };
  if (prepareError) return { name: suite, counts: { passed: 0, failed: 1, skipped: 0 }, ms: 0, note: `could not run: ${prepareError}` };
  if (runtime === "deno" && !existsSync(DENO)) return { name: suite, counts: { passed: 0, failed: 1, skipped: 0 }, ms: 0, note: `${DENO} is missing: run npm install` };
  const outDir = join(work, suite.replace(/:/g, "-"));
  // Deno: type checks belong to tsc/deno check (the suites use Bun's types); --expose-gc for Bun.gc() in the shim.
  const command = runtime === "bun"
    ? ["bun", "test", `--timeout=${GUEST_TEST_TIMEOUT_MS}`, "--reporter=junit", `--reporter-outfile=${GUEST_RESULTS_DIR}/junit.xml`,
      ...(args.pattern ? ["-t", args.pattern] : []), ...dirs.map((d) => `./${d}`)]
    : [DENO, "test", "-A", "--no-check", "--v8-flags=--expose-gc",
      `--junit-path=${GUEST_RESULTS_DIR}/junit.xml`, ...(args.pattern ? [`--filter=${args.pattern}`] : []), ...dirs.map((d) => `./${d}`)];
  let output = "";
  try {
    const r = await runGuest({
      profile: name,
      command,
      cwd: ROOT,
      env: runtime === "deno" ? DENO_ENV : undefined,
      outDir,
      timeoutMs: GUEST_TIMEOUT_MS,
      verbose: args.verbose || undefined,
      onOutput: (line) => {
        output += `${line}\n`;
        process.stdout.write(`${line}\n`);
      },
    });
    const junitPath = join(outDir, "junit.xml");
    const raw = existsSync(junitPath) ? readFileSync(junitPath, "utf8") : null;
    const junit = runtime === "deno" ? denoJunit(raw) : raw;
    const timing = `boot ${sec(r.readyMs)}, tests ${sec(r.commandMs)}`;
    if (r.failure || r.status !== 0) {
      const notes = kernelHighlights(r.kernelLog);
      if (notes.length) process.stderr.write(`kernel warnings about VFIO/IOMMU/PCI in ${name} (full log ${r.kernelLog}):\n  ${notes.join("\n  ")}\n`);
    }
    if (r.failure) {
      const { counts } = countsOf(junit, output, r.status);
      counts.failed = Math.max(1, counts.failed);
      return {
        name: suite, counts, ms: performance.now() - t0,
        note: `${r.failure}; console log ${r.consoleLog}, kernel log ${r.kernelLog} (rerun with --verbose to see the boot)`,
      };
    }
    const { counts, note } = countsOf(junit, output, r.status);
    return { name: suite, counts, ms: performance.now() - t0, note: note ? `${note}; ${timing}` : timing };
  } catch (e) {
    if (!(e instanceof SandboxError)) throw e;
    prepareError = e.message.replace(/\n\s*/g, " ");
    return { name: suite, counts: { passed: 0, failed: 1, skipped: 0 }, ms: performance.now() - t0, note: `could not run: ${prepareError}` };
  }
}

function sec(ms: number | undefined): string {
  return ms === undefined ? "?" : `${(ms / 1000).toFixed(1)} s`;
}

function printSummary(results: SuiteResult[], totalMs: number): Counts {
  const total: Counts = { passed: 0, failed: 0, skipped: 0 };
  const w = Math.max(5, ...results.map((r) => r.name.length));
  const lines = [`${"suite".padEnd(w)}  ${"pass".padStart(5)}  ${"fail".padStart(5)}  ${"skip".padStart(5)}  ${"time".padStart(7)}  note`];
  for (const r of results) {
    total.passed += r.counts.passed;
    total.failed += r.counts.failed;
    total.skipped += r.counts.skipped;
    lines.push(`${r.name.padEnd(w)}  ${String(r.counts.passed).padStart(5)}  ${String(r.counts.failed).padStart(5)}  ` +
      `${String(r.counts.skipped).padStart(5)}  ${sec(r.ms).padStart(7)}  ${r.note ?? ""}`);
  }
  lines.push(`total time ${sec(totalMs)}`);
  console.log(`\n=== summary ===\n${lines.join("\n")}`);
  return total;
}

const args = parseArgs(process.argv.slice(2));
const t0 = performance.now();
const work = mkdtempSync(join(tmpdir(), "bun-vfio-tests-"));
const results: SuiteResult[] = [];
try {
  results.push(await runUnit(args, work));
  if (args.deno) results.push(await runDenoUnit(args, work));
  if (!args.unitOnly) {
    for (const p of args.profiles) results.push(await runProfile(p, args, work));
    if (args.deno && args.profiles.includes(DENO_PROFILE)) results.push(await runProfile(DENO_PROFILE, args, work, "deno"));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const total = printSummary(results, performance.now() - t0);
console.log(`tests: ${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ""}`);
process.exit(total.failed > 0 ? 1 : 0);
