/**
 * Boot a guest for a profile, run one command in it, return its status.
 */
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { ensureInitramfs } from "./initramfs.ts";
import { ensureArm64Kernel, ensureArm64Userland, ensureGuestBun } from "./arm64-guest.ts";
import { ensureArm64Initramfs } from "./arm64-initramfs.ts";
import { commandScript, GUEST_BUN_PATH, jobScript } from "./job.ts";
import { ensureKernel, type GuestKernel } from "./kernel.ts";
import { kernelHighlights } from "./kernel-log.ts";
import { SandboxError, say } from "./log.ts";
import { MonitorBridge } from "./monitor.ts";
import { logDir } from "./paths.ts";
import { getProfile, type Profile } from "./profiles.ts";
import { CTL, INIT_PREFIX, MARK_EXIT, MARK_INIT, MARK_RUN, SHARE_OUT } from "./protocol.ts";
import { qemuArgs } from "./qemu.ts";
import { isEnvName } from "./shell.ts";
import { ensureHostTools, type HostTools } from "./tools.ts";

/** Exit status reported when the guest or the command timed out (as timeout(1)). */
export const STATUS_TIMEOUT = 124;
/** Exit status reported when the guest died or /init failed before the command ended. */
export const STATUS_GUEST_FAILED = 125;

/** Options of {@link runInGuest} and {@link runGuest}. */
export interface RunOptions {
  /** Profile name (see `PROFILES`) or a profile object. */
  profile: string | Profile;
  /** Program and arguments to run in the guest; a leading `bun` is the host's Bun binary. */
  command: string[];
  /** Extra environment for the command (on top of PATH, HOME=/tmp, BUN_VFIO_PROFILE, BUN_VFIO_SANDBOX=1, BUN_VFIO_RESULTS). */
  env?: Record<string, string>;
  /** Time the command may run, from its start (default 20 minutes). */
  timeoutMs?: number;
  /** Time from QEMU start until the command starts: boot, modules, binding (default 3 minutes). */
  bootTimeoutMs?: number;
  /** Working directory, same absolute path in the guest (default `process.cwd()`). Not under /proc, /sys or /dev. */
  cwd?: string;
  /** Host folder that receives what the command wrote to `$BUN_VFIO_RESULTS` (copied after the run). */
  outDir?: string;
  /** Show every console line, kernel boot messages included (default: `BUN_VFIO_SANDBOX_VERBOSE=1`). */
  verbose?: boolean;
  /** Receives each line of the command's output (default: written to stdout). */
  onOutput?: (line: string) => void;
  /** Runs on the host once the profile's scratch files exist in `scratchDir` ({tmp}), before QEMU starts: seed a disk image. */
  beforeBoot?: (scratchDir: string) => void | Promise<void>;
  /** Runs on the host after QEMU exited, before `scratchDir` is removed: check a disk image; `resultsDir` holds what the command wrote to `$BUN_VFIO_RESULTS`. Not called after Ctrl-C. */
  afterExit?: (scratchDir: string, resultsDir: string) => void | Promise<void>;
  /** A QEMU binary to use instead of the one on PATH (your own build): `qemu-system-x86_64`, or `-aarch64` for arm64 profiles. PATH then needs no QEMU. */
  qemu?: string;
}

/** What happened in a guest run. */
export interface GuestResult {
  /** The command's exit status, or {@link STATUS_TIMEOUT} / {@link STATUS_GUEST_FAILED}. */
  status: number;
  /** Why the run failed without a status from the command (undefined when it ran to the end). */
  failure?: string;
  /** Full guest console log (boot, /init, command output). */
  consoleLog: string;
  /** Full kernel log of the run, streamed from the guest's /proc/kmsg (may be absent if boot failed). */
  kernelLog: string;
  /** Milliseconds from QEMU start until /init ran. */
  bootMs?: number;
  /** Milliseconds from QEMU start until the command started. */
  readyMs?: number;
  /** Milliseconds the command ran. */
  commandMs?: number;
  /** Milliseconds of the whole run, preparation included. */
  totalMs: number;
}

const DEFAULT_TIMEOUT_MS = 20 * 60_000;
const DEFAULT_BOOT_TIMEOUT_MS = 3 * 60_000;
const POWEROFF_TIMEOUT_MS = 30_000;
/** Extra boots when the guest dies before the command starts for a reason that is not deterministic. */
const BOOT_RETRIES = 1;

/**
 * True when a run failed before the command started in a way that may not
 * happen again: a kernel panic or oops, a guest that stopped by itself, or a
 * boot timeout. Not for QEMU refusing its arguments or an /init error (a
 * missing device), which would fail the same way again.
 */
function shouldRetryBoot(r: BootOutcome): boolean {
  if (!r.failure || r.readyMs !== undefined || r.interrupted) return false;
  if (r.initError?.startsWith("guest /init failed")) return false;
  if (r.qemuExit !== 0 && r.qemuStderr && !r.timedOut) return false;
  return true;
}

/**
 * Boot the profile's guest, run `command` in it and report what happened.
 * Prepares the host tools, kernel and initramfs first (these may throw
 * {@link SandboxError}); guest failures (QEMU error, panic, /init error,
 * timeouts) do not throw but come back as a status with `failure` set. Every
 * step is time-bounded; a hung guest is killed. Temp folders are removed.
 */
export async function runGuest(opts: RunOptions): Promise<GuestResult> {
  const t0 = performance.now();
  const profile = typeof opts.profile === "string" ? getProfile(opts.profile) : opts.profile;
  const cwd = resolve(opts.cwd ?? process.cwd());
  if (/^\/(proc|sys|dev)(\/|$)/.test(cwd)) throw new SandboxError(`the guest covers ${cwd} with its own /proc, /sys or /dev: run from elsewhere`);
  if (cwd === "/tmp") throw new SandboxError("the guest's /tmp is its own tmpfs: run from a project folder, not /tmp itself");
  if (opts.command.length === 0) throw new SandboxError("no command to run in the guest");
  for (const k of Object.keys(opts.env ?? {})) if (!isEnvName(k)) throw new SandboxError(`invalid environment variable name: ${k}`);
  const verbose = opts.verbose ?? process.env.BUN_VFIO_SANDBOX_VERBOSE === "1";
  const onOutput = opts.onOutput ?? ((line: string) => void process.stdout.write(`${line}\n`));

  const guest = await prepareGuest(profile, opts.qemu);
  const { tools, kernel, initramfs } = guest;

  const logs = logDir();
  mkdirSync(logs, { recursive: true });
  const consoleLog = join(logs, `${profile.name}.console.log`);
  const kernelLog = join(logs, `${profile.name}.kernel.log`);
  rmSync(kernelLog, { force: true });
  for (const f of readdirSync(logs)) if (f.startsWith(`${profile.name}.console.failed-boot-`)) rmSync(join(logs, f), { force: true });

  const tmp = mkdtempSync(join(tmpdir(), "bun-vfio-sandbox-"));
  const share = join(tmp, "share");
  let interrupted: NodeJS.Signals | undefined;
  try {
    mkdirSync(join(share, "ctl"), { recursive: true });
    mkdirSync(join(share, SHARE_OUT));
    writeFileSync(join(share, CTL.job), jobScript(profile, cwd, opts.command, guest.hostBun));
    const guestBun = guest.hostBun ? GUEST_BUN_PATH : undefined;
    writeFileSync(join(share, CTL.cmd), commandScript({ profile, command: opts.command, cwd, env: opts.env, guestBun }));
    for (const [name, mib] of Object.entries(profile.scratch ?? {})) {
      writeFileSync(join(tmp, name), "");
      truncateSync(join(tmp, name), mib * 1024 * 1024);
    }
    await opts.beforeBoot?.(tmp);
    const qmpSocket = profile.monitor ? join(tmp, "qmp.sock") : undefined;
    const argv = qemuArgs(profile, { qemu: tools.qemu, vmlinuz: kernel.vmlinuz, initramfs, shareDir: share, tmpDir: tmp, verbose, qmpSocket });
    const bootOpts: BootOptions = {
      monitor: qmpSocket ? { socket: qmpSocket, outDir: join(share, SHARE_OUT) } : undefined,
      consoleLog,
      verbose,
      onOutput,
      bootTimeoutMs: opts.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS,
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    };
    say(`booting guest (profile ${profile.name}, kernel ${kernel.version}) ...`);
    let result = await boot(argv, bootOpts);
    for (let attempt = 1; attempt <= BOOT_RETRIES && shouldRetryBoot(result); attempt++) {
      // The command has not started, so booting again is safe. Rare early oopses
      // (int3 in patched kernel text) come from multi-threaded TCG, not from the code under test.
      const kept = consoleLog.replace(/\.log$/, `.failed-boot-${attempt}.log`);
      renameSync(consoleLog, kept);
      say(`${result.failure}; booting again (that console log kept as ${kept})`);
      for (const f of [CTL.status, CTL.kernelLog]) rmSync(join(share, f), { force: true });
      result = await boot(argv, bootOpts);
    }
    interrupted = result.interrupted;
    if (!interrupted) await opts.afterExit?.(tmp, join(share, SHARE_OUT));
    if (existsSync(join(share, CTL.kernelLog))) cpSync(join(share, CTL.kernelLog), kernelLog);
    const statusText = existsSync(join(share, CTL.status)) ? readFileSync(join(share, CTL.status), "utf8").trim() : "";
    let status: number;
    let failure = result.failure;
    if (failure) status = result.timedOut ? STATUS_TIMEOUT : STATUS_GUEST_FAILED;
    else if (/^\d+$/.test(statusText)) {
      status = Number(statusText);
      if (result.initError) failure = result.initError;
    } else {
      status = STATUS_GUEST_FAILED;
      failure = result.initError ?? `the guest stopped without reporting the command's status (QEMU exit ${result.qemuExit}${result.qemuStderr ? `: ${result.qemuStderr}` : ""})`;
    }
    if (opts.outDir) {
      const out = isAbsolute(opts.outDir) ? opts.outDir : resolve(opts.outDir);
      mkdirSync(out, { recursive: true });
      cpSync(join(share, SHARE_OUT), out, { recursive: true });
    }
    return {
      status,
      failure,
      consoleLog,
      kernelLog,
      bootMs: result.bootMs,
      readyMs: result.readyMs,
      commandMs: result.commandMs,
      totalMs: performance.now() - t0,
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    // Ctrl-C: the guest is dead and the temp files gone; now die of the signal as usual.
    if (interrupted) process.kill(process.pid, interrupted);
  }
}

/** What a profile's guest boots: QEMU, kernel, initramfs, and on arm64 the host path of the guest's Bun. */
interface PreparedGuest {
  tools: HostTools;
  kernel: GuestKernel;
  initramfs: string;
  hostBun?: string;
}

/**
 * Fetch (or find in the cache) what the profile's guest needs. x86: QEMU
 * (the caller's `qemu`, else the one on PATH), the kernel (see
 * ensureKernel), a busybox initramfs for the chroot.
 * arm64: qemu-system-aarch64, Debian trixie's arm64 kernel of the profile's
 * page size, busybox and glibc for arm64, Bun for aarch64 from npm.
 */
async function prepareGuest(profile: Profile, qemu: string | undefined): Promise<PreparedGuest> {
  if (!profile.arm64) {
    const tools = await ensureHostTools("x86_64", qemu);
    const kernel = await ensureKernel({ needBuilt: profile.kernel === "built" });
    return { tools, kernel, initramfs: await ensureInitramfs(kernel, tools.busybox, profile.modules) };
  }
  const tools = await ensureHostTools("arm64", qemu);
  const kernel = await ensureArm64Kernel(profile.arm64.pageKiB);
  const userland = await ensureArm64Userland();
  const hostBun = await ensureGuestBun();
  const initramfs = await ensureArm64Initramfs(kernel, userland, tools.busybox);
  return { tools, kernel, initramfs, hostBun };
}

interface BootOptions {
  /** QMP socket and results folder for the monitor bridge. */
  monitor?: { socket: string; outDir: string };
  consoleLog: string;
  verbose: boolean;
  onOutput: (line: string) => void;
  bootTimeoutMs: number;
  timeoutMs: number;
}

interface BootOutcome {
  qemuExit: number;
  qemuStderr: string;
  failure?: string;
  timedOut: boolean;
  initError?: string;
  /** The signal (SIGINT, SIGTERM) that stopped the run; re-raised once temp files are gone. */
  interrupted?: NodeJS.Signals;
  bootMs?: number;
  readyMs?: number;
  commandMs?: number;
}

/** Run QEMU, follow the console, enforce the phase timeouts. */
async function boot(argv: string[], o: BootOptions): Promise<BootOutcome> {
  const start = performance.now();
  const log = openSync(o.consoleLog, "w");
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const bridge = o.monitor ? new MonitorBridge(o.monitor.outDir) : undefined;
  bridge?.start(o.monitor!.socket).catch((err: unknown) => say(`QMP bridge: ${err instanceof Error ? err.message : String(err)}`));
  const out: BootOutcome = { qemuExit: -1, qemuStderr: "", timedOut: false };
  let phase = "boot" as "boot" | "run" | "exit";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (ms: number, what: string): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      out.failure ??= what;
      out.timedOut = true;
      proc.kill("SIGKILL");
    }, ms);
  };
  const sec = (ms: number): string => `${Math.round(ms / 1000)} s`;
  arm(o.bootTimeoutMs, `the guest did not start the command within ${sec(o.bootTimeoutMs)} (boot, modules, binding)`);

  const onSignal = (signal: NodeJS.Signals): void => {
    out.interrupted = signal;
    out.failure ??= `interrupted by ${signal}`;
    proc.kill("SIGKILL");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const handleLine = (raw: string): void => {
    const line = raw.replace(/\r+$/, "");
    if (phase === "run") {
      const at = line.indexOf(MARK_EXIT);
      if (at >= 0) {
        if (at > 0) o.onOutput(line.slice(0, at));
        phase = "exit";
        out.commandMs = performance.now() - start - (out.readyMs ?? 0);
        arm(POWEROFF_TIMEOUT_MS, `the guest did not power off within ${sec(POWEROFF_TIMEOUT_MS)} after the command`);
        return;
      }
      o.onOutput(line);
      return;
    }
    if (o.verbose) process.stderr.write(`${line}\n`);
    if (line.includes(MARK_INIT)) out.bootMs = performance.now() - start;
    else if (line.includes(MARK_RUN)) {
      phase = "run";
      out.readyMs = performance.now() - start;
      arm(o.timeoutMs, `the command did not finish within ${sec(o.timeoutMs)}`);
    } else if (line.startsWith(`${INIT_PREFIX} error:`)) {
      out.initError = `guest /init failed: ${line.slice(INIT_PREFIX.length + 8)}`;
      if (!o.verbose) process.stderr.write(`${line}\n`);
    } else if (line.includes("Kernel panic - ")) {
      out.initError ??= `kernel panic: ${line.replace(/^.*Kernel panic - /, "")}`;
    }
  };

  const pump = async (): Promise<void> => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      writeSync(log, chunk);
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        handleLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    if (buf) handleLine(buf);
  };
  try {
    const [, stderr, code] = await Promise.all([pump(), new Response(proc.stderr).text(), proc.exited]);
    out.qemuExit = code;
    out.qemuStderr = stderr.trim();
    if (out.qemuStderr) writeSync(log, `\n--- qemu stderr ---\n${out.qemuStderr}\n`);
    if (!out.failure && phase === "boot") {
      const why = out.initError ?? (out.qemuStderr ? `QEMU exit ${code}: ${out.qemuStderr}` : `QEMU exit ${code}`);
      out.failure = out.bootMs === undefined ? `the guest did not boot (${why})` : `the guest stopped before the command started (${why})`;
    }
    if (!out.failure && phase === "run") out.failure = out.initError ?? "the guest stopped while the command was running";
  } finally {
    bridge?.stop();
    clearTimeout(timer);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    closeSync(log);
  }
  return out;
}

/**
 * Boot the profile's guest, run `command` in the project's directory, and
 * return its exit status. The command's output streams to stdout; progress
 * goes to stderr. When the guest fails (QEMU error, kernel panic, /init
 * error, timeout) it prints why and where the console and kernel logs are,
 * and returns 124 (timeout) or 125 (guest failure). Throws
 * {@link SandboxError} when the guest cannot be prepared (QEMU missing and
 * not installable, kernel download impossible).
 * @example
 * const status = await runInGuest({ profile: "remap", command: ["bun", "examples/nvme-identify.ts"] });
 */
export async function runInGuest(opts: RunOptions): Promise<number> {
  const r = await runGuest(opts);
  if (r.failure || r.status !== 0) {
    const notes = kernelHighlights(r.kernelLog);
    if (notes.length) say(`kernel warnings about VFIO/IOMMU/PCI during the run:\n  ${notes.join("\n  ")}`);
  }
  if (r.failure) {
    say(`${r.failure}`);
    say(`console log: ${r.consoleLog}`);
    if (existsSync(r.kernelLog)) say(`kernel log: ${r.kernelLog}`);
  } else if (r.status !== 0) {
    say(`command exited with status ${r.status} (kernel log: ${r.kernelLog})`);
  }
  return r.status;
}
