/**
 * The sandbox's own x86-64 guest kernel: Debian's kernel source, configured
 * as `tinyconfig` plus `sandbox/guest-kernel.config` (iommufd, the VFIO
 * cdev, no-IOMMU, Intel VT-d with interrupt remapping, 9p; everything built
 * in), built once and cached under `<cache>/kernel/built/` keyed by source
 * version, fragment and compiler. Source tree and objects stay in
 * `<cache>/kernel-build/` so a changed fragment or compiler rebuilds in
 * seconds to a minute instead of ~10 minutes.
 */
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { bzImageVersion } from "./bzimage.ts";
import { describeDropped, droppedOptions, FRAGMENT_PATH } from "./kernel-config.ts";
import { BUILD_HINT, ensureKernelSource, kernelBuildRoot, PINNED_SOURCE_VERSION, SOURCE_PACKAGE, versionDirName, type KernelSource } from "./kernel-source.ts";
import type { GuestKernel } from "./kernel-types.ts";
import { SandboxError, say } from "./log.ts";
import { cacheDir, logDir } from "./paths.ts";
import { runTool } from "./proc.ts";
import { aptInstall } from "./tools.ts";

/** Bump when the build steps change in a way that changes the image, so cached images are rebuilt. */
const RECIPE = 1;
/** Debian packages of the build, and what each must provide. */
const BUILD_PACKAGES = ["build-essential", "bc", "bison", "flex", "libelf-dev", "libssl-dev", "cpio"] as const;
const BUILD_TOOLS = ["make", "gcc", "bc", "bison", "flex", "cpio"] as const;
/** objtool needs libelf; the certificate tools need OpenSSL's headers. */
const BUILD_HEADERS = ["/usr/include/gelf.h", "/usr/include/openssl/opensslv.h"] as const;
/** What a first build costs (measured: 6.12.95 with this fragment, gcc 12), for the progress lines. */
const FIRST_BUILD_FILES = 1540;
const FIRST_BUILD_CPU_S = 440;
const PROGRESS_EVERY_MS = 20_000;
const MAKE_TIMEOUT_MS = 90 * 60_000;
const CONFIG_TIMEOUT_MS = 5 * 60_000;
/** Built images kept in the cache (each about 4 MB); older ones are removed after a build. */
const KEEP_IMAGES = 3;
/** Fixed so two builds of the same inputs differ only in the build timestamp. */
const BUILD_ENV = { KBUILD_BUILD_USER: "bun-vfio", KBUILD_BUILD_HOST: "sandbox", ARCH: "x86_64" };

/** What a cached image was built from, and how long it took (`build.json` beside it). */
export interface BuildRecord {
  /** Debian version of the source package. */
  sourceVersion: string;
  /** First line of `gcc --version`. */
  compiler: string;
  /** Hash of the fragment's text. */
  fragmentHash: string;
  /** Wall-clock seconds of configure plus make. */
  wallSeconds: number;
  /** CPU seconds (user + system) of configure plus make, children included. */
  cpuSeconds: number;
  /** Files make compiled (CC and AS lines). */
  filesCompiled: number;
}

/** The cache key of an image: source version, fragment, compiler, recipe. */
export function buildKey(sourceVersion: string, fragment: string, compiler: string): string {
  return Bun.hash(JSON.stringify([RECIPE, sourceVersion, fragment, compiler])).toString(16).padStart(16, "0");
}

/** Folder of the built images: `<cache>/kernel/built`. */
export function builtImagesDir(): string {
  return join(cacheDir(), "kernel", "built");
}

function imageDir(sourceVersion: string, key: string): string {
  return join(builtImagesDir(), `${versionDirName(sourceVersion)}-${key}`);
}

/** The guest kernel in an image folder, or null when it is incomplete. */
function imageAt(dir: string): GuestKernel | null {
  const vmlinuz = join(dir, "bzImage");
  const modulesDir = join(dir, "modules");
  if (!existsSync(vmlinuz) || !existsSync(join(modulesDir, "modules.builtin")) || !existsSync(join(dir, "build.json"))) return null;
  return { version: bzImageVersion(vmlinuz) ?? "unknown", vmlinuz, modulesDir };
}

/** First line of `gcc --version`, or null when there is no gcc. */
async function compilerId(): Promise<string | null> {
  if (!Bun.which("gcc")) return null;
  const r = await runTool(["gcc", "--version"], { timeoutMs: 30_000 });
  return r.stdout.split("\n")[0]!.trim();
}

/** Install the build dependencies when a tool or header is missing (root on Debian), else throw naming them. */
async function ensureBuildDeps(): Promise<void> {
  const missing = [...BUILD_TOOLS.filter((t) => !Bun.which(t)), ...BUILD_HEADERS.filter((h) => !existsSync(h))];
  if (missing.length === 0) return;
  await aptInstall(BUILD_PACKAGES, `the kernel build tools (${missing.join(", ")})`);
  const still = [...BUILD_TOOLS.filter((t) => !Bun.which(t)), ...BUILD_HEADERS.filter((h) => !existsSync(h))];
  if (still.length) throw new SandboxError(`apt-get finished but the kernel build still lacks ${still.join(", ")}; ${BUILD_HINT}`);
}

/**
 * The sandbox's own guest kernel: the cached image for the pinned source,
 * the fragment and this compiler ("using cached kernel ..."), else built:
 * build tools installed if missing, source fetched, configured, every
 * fragment option checked, `make bzImage` with a progress line every 20 s.
 * Concurrent callers wait for one build.
 * @throws SandboxError when a tool is missing, the source cannot be fetched, an option was dropped, or make fails
 */
export async function ensureBuiltKernel(): Promise<GuestKernel> {
  return (await findBuiltKernel(true)) ?? buildKernel();
}

/**
 * The cached image for the pinned source, this fragment and this compiler,
 * or null (no apt, no make). `announce` prints "using cached kernel ...".
 */
export async function findBuiltKernel(announce = false): Promise<GuestKernel | null> {
  const compiler = await compilerId();
  if (!compiler) return null;
  const dir = imageDir(PINNED_SOURCE_VERSION, buildKey(PINNED_SOURCE_VERSION, readFileSync(FRAGMENT_PATH, "utf8"), compiler));
  const k = imageAt(dir);
  if (k && announce) say(`using cached kernel ${k.version} (${SOURCE_PACKAGE} ${PINNED_SOURCE_VERSION}, ${dir})`);
  return k;
}

async function buildKernel(): Promise<GuestKernel> {
  const fragment = readFileSync(FRAGMENT_PATH, "utf8");
  let compiler = await compilerId();
  const hit = (version: string): GuestKernel | null => {
    if (!compiler) return null;
    const dir = imageDir(version, buildKey(version, fragment, compiler));
    const k = imageAt(dir);
    if (k) say(`using cached kernel ${k.version} (${SOURCE_PACKAGE} ${version}, ${dir})`);
    return k;
  };
  mkdirSync(kernelBuildRoot(), { recursive: true });
  using _lock = await buildLock();
  const again = hit(PINNED_SOURCE_VERSION);
  if (again) return again;
  await ensureBuildDeps();
  compiler = (await compilerId())!;
  const source = await ensureKernelSource();
  if (source.version !== PINNED_SOURCE_VERSION) {
    const cached = hit(source.version);
    if (cached) return cached;
  }
  return build(source, fragment, compiler);
}

/** Configure and build `source`, then cache the image. */
async function build(source: KernelSource, fragment: string, compiler: string): Promise<GuestKernel> {
  const obj = join(source.dir, "obj");
  mkdirSync(obj, { recursive: true });
  mkdirSync(logDir(), { recursive: true });
  const logPath = join(logDir(), "kernel-build.log");
  const log = openSync(logPath, "w");
  const t0 = performance.now();
  let cpuUs = 0;
  let files = 0;
  try {
    const step = async (argv: string[]): Promise<void> => {
      writeSync(log, `\n$ ${argv.join(" ")}\n`);
      const r = await runLogged(argv, source.tree, log, CONFIG_TIMEOUT_MS);
      cpuUs += r.cpuUs;
      if (r.code !== 0) throw buildFailure(`${argv.slice(0, 4).join(" ")} ... failed (status ${r.code})`, logPath);
    };
    say(`configuring kernel ${SOURCE_PACKAGE} ${source.version}: tinyconfig + ${FRAGMENT_PATH}`);
    await step(["make", `O=${obj}`, "ARCH=x86_64", "tinyconfig"]);
    await step(["scripts/kconfig/merge_config.sh", "-m", "-O", obj, join(obj, ".config"), FRAGMENT_PATH]);
    await step(["make", `O=${obj}`, "ARCH=x86_64", "olddefconfig"]);
    const dropped = droppedOptions(fragment, readFileSync(join(obj, ".config"), "utf8"));
    if (dropped.length) {
      throw new SandboxError(`the kernel configuration dropped ${dropped.length} option(s) of ${FRAGMENT_PATH} ` +
        `(their dependencies are not met; fix the fragment):\n  ${describeDropped(dropped).replaceAll("\n", "\n  ")}`);
    }

    const jobs = availableParallelism();
    const fresh = !existsSync(join(obj, "vmlinux"));
    say(fresh
      ? `building the guest kernel with ${jobs} jobs: about ${FIRST_BUILD_FILES} files, ${FIRST_BUILD_CPU_S} s of CPU (~${Math.ceil(FIRST_BUILD_CPU_S / jobs / 60)} min on ${jobs} idle cores); cached afterwards`
      : `rebuilding the guest kernel (objects of an earlier build are reused)`);
    writeSync(log, `\n$ make bzImage -j${jobs}\n`);
    const ticker = setInterval(() => say(`  kernel build: ${files} files compiled, ${Math.round((performance.now() - t0) / 1000)} s`), PROGRESS_EVERY_MS);
    let r: LoggedRun;
    try {
      r = await runLogged(["make", `O=${obj}`, "ARCH=x86_64", `-j${jobs}`, "bzImage"], source.tree, log, MAKE_TIMEOUT_MS, (line) => {
        if (/^\s+(CC|AS)\s/.test(line)) files++;
      });
    } finally {
      clearInterval(ticker);
    }
    cpuUs += r.cpuUs;
    if (r.code !== 0) throw buildFailure(`make bzImage failed (status ${r.code})`, logPath);
  } finally {
    closeSync(log);
  }
  const record: BuildRecord = {
    sourceVersion: source.version,
    compiler,
    fragmentHash: Bun.hash(fragment).toString(16),
    wallSeconds: Math.round((performance.now() - t0) / 100) / 10,
    cpuSeconds: Math.round(cpuUs / 100_000) / 10,
    filesCompiled: files,
  };
  const kernel = storeImage(source, obj, buildKey(source.version, fragment, compiler), record);
  say(`kernel ${kernel.version} built in ${record.wallSeconds} s (CPU ${record.cpuSeconds} s, ${files} files compiled), cached in ${kernel.vmlinuz}`);
  return kernel;
}

/** Copy bzImage, .config and modules.builtin into the image cache (atomically), then prune old images. */
function storeImage(source: KernelSource, obj: string, key: string, record: BuildRecord): GuestKernel {
  const dest = imageDir(source.version, key);
  const stage = `${dest}.${process.pid}.tmp`;
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, "modules", "kernel"), { recursive: true });
  copyFileSync(join(obj, "arch/x86/boot/bzImage"), join(stage, "bzImage"));
  copyFileSync(join(obj, ".config"), join(stage, "config"));
  // The initramfs resolves GUEST_MODULES against this list: all built in, so none is loaded, and a missing one fails by name.
  copyFileSync(join(obj, "modules.builtin"), join(stage, "modules", "modules.builtin"));
  writeFileSync(join(stage, "build.json"), `${JSON.stringify(record, null, 2)}\n`);
  rmSync(dest, { recursive: true, force: true });
  renameSync(stage, dest);
  const images = readdirSync(builtImagesDir())
    .filter((d) => !d.endsWith(".tmp"))
    .map((d) => ({ d, t: statSync(join(builtImagesDir(), d)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { d } of images.slice(KEEP_IMAGES)) rmSync(join(builtImagesDir(), d), { recursive: true, force: true });
  return imageAt(dest)!;
}

function buildFailure(what: string, logPath: string): SandboxError {
  const tail = readFileSync(logPath, "utf8").trimEnd().split("\n").slice(-25).join("\n  ");
  return new SandboxError(`kernel build: ${what}; last lines of ${logPath}:\n  ${tail}\n${BUILD_HINT}`);
}

interface LoggedRun {
  code: number;
  cpuUs: number;
}

/** Run a build step in `cwd` with the build environment, its output appended to `log` (and each stdout line to `onLine`). */
async function runLogged(argv: string[], cwd: string, log: number, timeoutMs: number, onLine?: (line: string) => void): Promise<LoggedRun> {
  const proc = Bun.spawn(argv, { cwd, env: { ...process.env, ...BUILD_ENV }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const drain = async (stream: ReadableStream<Uint8Array>, lines: boolean): Promise<void> => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      writeSync(log, chunk);
      if (!lines || !onLine) continue;
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
  };
  const [, , code] = await Promise.all([drain(proc.stdout, true), drain(proc.stderr, false), proc.exited]);
  clearTimeout(timer);
  if (timedOut) throw new SandboxError(`kernel build: ${argv.join(" ")} did not finish within ${timeoutMs / 60_000} min and was killed`);
  const cpu = proc.resourceUsage()?.cpuTime;
  return { code, cpuUs: cpu ? Number(cpu.user) + Number(cpu.system) : 0 };
}

/**
 * Hold `<cache>/kernel-build/.lock` (holding our pid) while building; wait
 * while another live process holds it, take it over from a dead one.
 */
async function buildLock(): Promise<Disposable> {
  const path = join(kernelBuildRoot(), ".lock");
  let waited = 0;
  for (;;) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return { [Symbol.dispose]: () => rmSync(path, { force: true }) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const pid = Number(readFileSync(path, "utf8").trim());
    if (!alive(pid)) {
      rmSync(path, { force: true });
      continue;
    }
    if (waited % 60_000 === 0) say(`waiting for the kernel build of process ${pid} (${path})`);
    await Bun.sleep(5_000);
    waited += 5_000;
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
