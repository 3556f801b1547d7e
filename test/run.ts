#!/usr/bin/env bun
/**
 * The whole test suite (`npm test`): host unit tests, the package tests
 * (npm pack into a scratch consumer; the unit suite under the minimum
 * engines.bun), then for each sandbox profile a QEMU guest running that
 * profile's guest suites with real vfio-pci, then test/host-vm (host-side
 * tests that boot their own guests, e.g. sandbox --device). Prints a per-suite summary; the last line is always
 * `tests: N passed, N failed[, N skipped]`. Exits 1 when anything failed,
 * including a suite that could not run (never a silent skip).
 *
 * Deno: `unit:deno` (deno check of the library, then test/deno on the
 * host), `guest:remap:deno` and `guest:iommufd:deno` (DENO_GUEST_FILES, the
 * same files, under `deno test` through the bun:test shim in
 * test/deno/bun-test.ts: type1 in remap, iommufd in iommufd) run with the
 * unit tests and those profiles (`--no-deno` skips them).
 *
 *   bun test/run.ts [--unit-only] [--profile NAME]... [-t PATTERN] [--verbose]
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GUEST_RESULTS_DIR, kernelHighlights, PROFILES, profileTestDirs, runGuest, SandboxError } from "../sandbox/index.ts";
import { countsOf, parseJunit, type Counts } from "./harness/counts.ts";
import { ensureTestPackages } from "./harness/test-packages.ts";
import { packConsumer } from "./package/consumer.ts";

const ROOT = join(import.meta.dir, "..");
// One kernel for every x86 profile: the sandbox's own build (built once, then cached), not Debian's prebuilt one.
process.env.BUN_VFIO_KERNEL ??= "built";
/** Time a guest's `bun test` may run. */
const GUEST_TIMEOUT_MS = 10 * 60_000;
/** Per-test timeout inside the guest (TCG is slower than the host). */
const GUEST_TEST_TIMEOUT_MS = 60_000;
/** The Deno binary of the `deno` devDependency (the guest sees the host's root, so the same path). */
const DENO = join(ROOT, "node_modules/.bin/deno");
/** The profiles whose public-API guest suites also run under Deno (remap: type1, iommufd: iommufd). */
const DENO_PROFILES = ["remap", "iommufd"];
/** Guest suites that exercise the public API, run under Deno too (the same files, through test/deno/bun-test.ts); the CLI suites spawn Bun and stay Bun-only. */
const DENO_GUEST_FILES = ["test/vm/common/sandbox.test.ts", "test/vm/remap/core.test.ts", "test/vm/remap/bar.test.ts", "test/vm/remap/irq.test.ts",
  "test/vm/remap/dma.test.ts", "test/vm/remap/examples.test.ts"];
/**
 * arm64 guests run Bun without JSC's optimizing tiers (DFG and FTL). Bun
 * 1.4.5 under QEMU's aarch64 TCG crashed (SIGSEGV) or produced impossible
 * values ("b.close is not a function" on a Bar, a BigInt mixed with a number
 * where both were BigInts) in JIT-hot test processes. With FTL alone off,
 * test/vm/remap/leaks.test.ts still crashed in 3 of 6 runs in a row on
 * arm64-16k (segfault in Bun's main thread); with DFG off too, 0 of 6. The
 * library's behaviour does not depend on the tier; the suites run slower.
 */
const ARM64_BUN_ENV = { BUN_JSC_useFTLJIT: "0", BUN_JSC_useDFGJIT: "0" };
/** Deno's environment: a writable cache (the guest's root is read-only), no update check. */
const DENO_ENV = { DENO_DIR: "/tmp/deno-dir", DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

const HELP = `Usage: bun test/run.ts [options] [PATTERN]

Runs test/unit and test/package on the host, then test/vm/common +
test/vm/<profile> in a QEMU guest per profile, then test/host-vm (see bun src/cli/main.ts sandbox --list-profiles).

  --unit-only          host unit tests only
  --no-deno            skip the Deno suites (unit:deno, guest:remap:deno)
  --no-host-vm         skip test/host-vm (host-side tests that boot their own guests; default: run when all profiles run)
  --profile NAME       only this guest profile (repeatable)
  -t, --test-name-pattern PATTERN   only tests whose name matches (also a bare PATTERN)
  --verbose            show the guests' kernel boot messages
  -h, --help           this text`;

interface Args {
  unitOnly: boolean;
  profiles: string[];
  pattern?: string;
  verbose: boolean;
  hostVm: boolean;
  deno: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { unitOnly: false, profiles: [], verbose: false, hostVm: true, deno: true };
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
    else if (key === "--verbose") a.verbose = true;
    else if (key === "--no-host-vm") a.hostVm = false;
    else if (key === "--no-deno") a.deno = false;
    else if (key === "--host-vm") a.hostVm = true;
    else if (key === "--profile") {
      const p = value();
      if (!PROFILES[p]) usage(`unknown profile "${p}" (known: ${Object.keys(PROFILES).join(", ")})`);
      a.profiles.push(p);
    } else if (key === "-t" || key === "--test-name-pattern") a.pattern = value();
    else if (!arg.startsWith("-") && a.pattern === undefined) a.pattern = arg;
    else usage(`unknown argument ${arg}`);
  }
  if (a.profiles.length === 0) a.profiles = Object.keys(PROFILES);
  else if (!argv.includes("--host-vm")) a.hostVm = false; // naming profiles means: just those guests
  return a;
}

function usage(msg: string): never {
  console.error(`test/run.ts: ${msg}\n\n${HELP}`);
  process.exit(2);
}

/** A host-side check around a guest run (test/vm/<profile>/host.ts). */
interface HostCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

/** What test/vm/<profile>/host.ts exports. */
interface HostSteps {
  beforeBoot?: (scratchDir: string) => void;
  afterExit: (scratchDir: string, resultsDir: string, filtered: boolean) => HostCheck[];
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
  if (!statSync(abs).isDirectory()) return abs.endsWith(".test.ts"); // a profile may list single test files
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
  const check = await runHost([DENO, "check", "src/index.ts", "src/sys/runtime-deno.ts", "examples", "bench/deno-errno.ts", "bench/errno-child.ts", "bench/seam-paths.ts"], env);
  if (check.status !== 0) return { name: "unit:deno", counts: { passed: 0, failed: 1, skipped: 0 }, ms: performance.now() - t0, note: "deno check of src/, examples/ and the Deno benchmarks failed" };
  // JSR: every public symbol has an explicit type ("slow types" would fail the dry run); needs no registry.
  const publish = await runHost([DENO, "publish", "--dry-run", "--allow-dirty"], env);
  if (publish.status !== 0) return { name: "unit:deno", counts: { passed: 0, failed: 1, skipped: 0 }, ms: performance.now() - t0, note: "deno publish --dry-run failed (slow types or a bad file list)" };
  const junit = join(work, "unit-deno.xml");
  const r = await runHost([DENO, "test", "-A", `--junit-path=${junit}`, ...(args.pattern ? [`--filter=${args.pattern}`] : []), "test/deno"], env);
  const { counts, note } = countsOf(denoJunit(existsSync(junit) ? readFileSync(junit, "utf8") : null), r.output, r.status);
  return { name: "unit:deno", counts, ms: performance.now() - t0, note };
}

async function runUnit(args: Args, work: string, dir = "test/unit", name = "unit"): Promise<SuiteResult> {
  const t0 = performance.now();
  banner(name === "unit" ? "unit tests (host)" : name === "package" ? "package tests (host: npm pack, engines.bun)" : `${name} tests (host, booting their own guests)`);
  if (!hasTests(dir)) return { name, counts: { passed: 0, failed: 0, skipped: 0 }, ms: 0, note: `no test files in ${dir}` };
  const junit = join(work, `${name}.xml`);
  const cmd = [process.execPath, "test", "--reporter=junit", `--reporter-outfile=${junit}`,
    ...(args.pattern ? ["-t", args.pattern] : []), ...(name === "unit" ? [] : ["--timeout=900000"]), `./${dir}`];
  const { output, status } = await runHost(cmd, { ...process.env, BUN_VFIO_SANDBOX: undefined });
  const { counts, note } = countsOf(existsSync(junit) ? readFileSync(junit, "utf8") : null, output, status);
  return { name, counts, ms: performance.now() - t0, note };
}

/** The test files of a test directory (or the file itself), sorted. */
function testFilesOf(dir: string): string[] {
  const path = join(ROOT, dir);
  if (!statSync(path).isDirectory()) return [dir];
  return readdirSync(path).filter((f) => f.endsWith(".test.ts")).sort().map((f) => `${dir}/${f}`);
}

/** A word for the guest's sh: test paths and options are plain, but quote anything else. */
function shWord(w: string): string {
  return /^[\w./=:-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`;
}

function readOptionalText(path: string): string | null {
  return existsSync(path) ? readFileSync(path, "utf8") : null;
}

/**
 * The per-file JUnit reports of one guest run summed into one root element;
 * a file that left no report (its process crashed) counts as one failure.
 */
function mergedJunit(outDir: string, files: string[]): string {
  const sum = { tests: 0, failures: 0, errors: 0, skipped: 0 };
  files.forEach((file, i) => {
    const xml = readOptionalText(join(outDir, `junit-${i}.xml`));
    const j = xml ? parseJunit(xml) : null;
    if (!j) {
      process.stdout.write(`(fail) ${file}: its bun test process left no report (crashed)\n`);
      sum.tests++;
      sum.failures++;
      return;
    }
    sum.tests += j.tests;
    sum.failures += j.failures;
    sum.errors += j.errors;
    sum.skipped += j.skipped;
  });
  return `<testsuites tests="${sum.tests}" failures="${sum.failures}" errors="${sum.errors}" skipped="${sum.skipped}"></testsuites>`;
}

/**
 * The npm tarball installed into a scratch project (test/package/consumer.ts)
 * under this checkout's .cache/ (git-ignored, not packed): every guest sees
 * the working directory at its own path (x86 shares the host's /, arm64 binds
 * only the working directory; their /tmp is their own); made on the first
 * guest run, removed at exit. The guests get its
 * path as BUN_VFIO_NPM_CONSUMER (test/vm/remap/examples.test.ts runs an
 * example from it on the runtime running the tests).
 */
let npmConsumer: { dir?: string; project?: string; error?: string } | undefined;

function npmConsumerEnv(): Record<string, string> {
  if (!npmConsumer) {
    mkdirSync(join(ROOT, ".cache"), { recursive: true });
    const dir = mkdtempSync(join(ROOT, ".cache", "npm-consumer-"));
    try {
      npmConsumer = { dir, project: packConsumer(dir) };
    } catch (e) {
      npmConsumer = { dir, error: e instanceof Error ? e.message : String(e) };
      process.stdout.write(`(fail) could not pack the package for the guests: ${npmConsumer.error}\n`);
    }
  }
  // Without it the guest's example test fails and names this run's output for the reason.
  return npmConsumer.project ? { BUN_VFIO_NPM_CONSUMER: npmConsumer.project } : {};
}

/** Set once a guest could not be prepared (QEMU or kernel missing): later profiles fail with the same reason. */
let prepareError: string | undefined;

async function runProfile(name: string, args: Args, work: string, runtime: "bun" | "deno" = "bun"): Promise<SuiteResult> {
  const t0 = performance.now();
  const suite = runtime === "bun" ? `guest:${name}` : `guest:${name}:${runtime}`;
  banner(`guest tests, profile ${name}${runtime === "bun" ? "" : ` under ${runtime}`}`);
  const dirs = runtime === "bun" ? profileTestDirs(PROFILES[name]!).filter(hasTests) : DENO_GUEST_FILES;
  if (runtime === "deno" && !existsSync(DENO)) return { name: suite, counts: { passed: 0, failed: 1, skipped: 0 }, ms: 0, note: `${DENO} is missing: run npm install` };
  if (dirs.length === 0) return { name: suite, counts: { passed: 0, failed: 0, skipped: 0 }, ms: 0, note: "no guest test files" };
  if (!prepareError) {
    try {
      await ensureTestPackages();
    } catch (e) {
      if (!(e instanceof SandboxError)) throw e;
      prepareError = e.message.replace(/\n\s*/g, " ");
    }
  }
  if (prepareError) return { name: suite, counts: { passed: 0, failed: 1, skipped: 0 }, ms: 0, note: `could not run: ${prepareError}` };
  const outDir = join(work, suite.replace(/:/g, "-"));
  // Host-side steps around the guest (test/vm/<profile>/host.ts): seed a disk image, then check it.
  const hostFile = join(ROOT, "test/vm", name, "host.ts");
  const host = existsSync(hostFile) && runtime === "bun" ? (await import(hostFile)) as HostSteps : undefined;
  let hostChecks: HostCheck[] = [];
  let hostError: string | undefined;
  // arm64: one bun process per test file. Bun 1.4.5 on arm64 crashed (SIGSEGV, once an abort) in long
  // test processes that had run many files, never in the same file run alone; one process per file
  // keeps a runtime crash confined to the file it happened in (it still counts as a failure).
  const perFile = PROFILES[name]!.arm64 !== undefined ? dirs.flatMap(testFilesOf) : undefined;
  const testArgs = ["bun", "test", `--timeout=${GUEST_TEST_TIMEOUT_MS}`, "--reporter=junit", ...(args.pattern ? ["-t", args.pattern] : [])];
  // Deno: type checks belong to tsc/deno check (the suites use Bun's types); --expose-gc for Bun.gc() in the shim.
  const command = runtime === "deno"
    ? [DENO, "test", "-A", "--no-check", "--v8-flags=--expose-gc", `--junit-path=${GUEST_RESULTS_DIR}/junit.xml`,
      ...(args.pattern ? [`--filter=${args.pattern}`] : []), ...dirs.map((d) => `./${d}`)]
    : perFile
    ? ["sh", "-c", `st=0; ${perFile.map((f, i) => `${testArgs.map(shWord).join(" ")} --reporter-outfile=${GUEST_RESULTS_DIR}/junit-${i}.xml ./${f} || st=1`).join("; ")}; exit $st`]
    : [...testArgs, `--reporter-outfile=${GUEST_RESULTS_DIR}/junit.xml`, ...dirs.map((d) => `./${d}`)];
  let output = "";
  try {
    const r = await runGuest({
      profile: name,
      command,
      cwd: ROOT,
      env: { ...npmConsumerEnv(), ...(runtime === "deno" ? DENO_ENV : perFile ? ARM64_BUN_ENV : {}) },
      outDir,
      timeoutMs: GUEST_TIMEOUT_MS,
      verbose: args.verbose || undefined,
      beforeBoot: host?.beforeBoot,
      afterExit: host ? (scratch, results) => {
        try {
          hostChecks = host.afterExit(scratch, results, args.pattern !== undefined);
        } catch (e) {
          hostError = e instanceof Error ? e.message : String(e);
        }
      } : undefined,
      onOutput: (line) => {
        output += `${line}\n`;
        process.stdout.write(`${line}\n`);
      },
    });
    for (const c of hostChecks) process.stdout.write(`${c.ok ? "(pass)" : "(fail)"} ${c.name}${c.detail ? `: ${c.detail}` : ""}\n`);
    if (hostError) process.stdout.write(`(fail) host-side checks of ${name}: ${hostError}\n`);
    const addHost = (c: Counts): Counts => ({
      passed: c.passed + hostChecks.filter((h) => h.ok).length,
      failed: c.failed + hostChecks.filter((h) => !h.ok).length + (hostError ? 1 : 0),
      skipped: c.skipped,
    });
    const raw = perFile && runtime === "bun" ? mergedJunit(outDir, perFile) : readOptionalText(join(outDir, "junit.xml"));
    const junit = runtime === "deno" ? denoJunit(raw) : raw;
    const timing = `boot ${sec(r.readyMs)}, tests ${sec(r.commandMs)}`;
    if (r.failure || r.status !== 0) {
      const notes = kernelHighlights(r.kernelLog);
      if (notes.length) process.stderr.write(`kernel warnings about VFIO/IOMMU/PCI in ${name} (full log ${r.kernelLog}):\n  ${notes.join("\n  ")}\n`);
    }
    if (r.failure) {
      const counts = addHost(countsOf(junit, output, r.status).counts);
      counts.failed = Math.max(1, counts.failed);
      return {
        name: suite, counts, ms: performance.now() - t0,
        note: `${r.failure}; console log ${r.consoleLog}, kernel log ${r.kernelLog} (rerun with --verbose to see the boot)`,
      };
    }
    const { counts, note } = countsOf(junit, output, r.status);
    return { name: suite, counts: addHost(counts), ms: performance.now() - t0, note: note ? `${note}; ${timing}` : timing };
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
  results.push(await runUnit(args, work, "test/package", "package"));
  if (!args.unitOnly) for (const p of args.profiles) results.push(await runProfile(p, args, work));
  if (!args.unitOnly && args.hostVm) results.push(await runUnit(args, work, "test/host-vm", "host-vm"));
  if (args.deno) results.push(await runDenoUnit(args, work));
  if (!args.unitOnly && args.deno) for (const p of DENO_PROFILES.filter((d) => args.profiles.includes(d))) results.push(await runProfile(p, args, work, "deno"));
} finally {
  rmSync(work, { recursive: true, force: true });
  if (npmConsumer?.dir) rmSync(npmConsumer.dir, { recursive: true, force: true });
}
const total = printSummary(results, performance.now() - t0);
console.log(`tests: ${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ""}`);
process.exit(total.failed > 0 ? 1 : 0);
