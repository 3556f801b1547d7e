/**
 * The guest kernel: Debian's linux-image from bookworm-backports, fetched
 * with a private apt configuration into the cache, or the user's own kernel
 * via `BUN_VFIO_KERNEL` / `BUN_VFIO_MODULES`.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, readdirSync, renameSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { deriveBackportsSource, KERNEL_SUITE } from "./apt-sources.ts";
import { SandboxError, say } from "./log.ts";
import { cacheDir } from "./paths.ts";
import { runTool } from "./proc.ts";

/** A guest kernel and its modules. */
export interface GuestKernel {
  /** Kernel release, e.g. `6.12.95+deb12-amd64`. */
  version: string;
  /** Path of the bzImage. */
  vmlinuz: string;
  /** The kernel's `/lib/modules/<version>` folder. */
  modulesDir: string;
}

/** Time bounds of the kernel download steps. */
const APT_UPDATE_TIMEOUT_MS = 5 * 60_000;
const DOWNLOAD_TIMEOUT_MS = 15 * 60_000;
const EXTRACT_TIMEOUT_MS = 5 * 60_000;

/** How to use another kernel, shown when the download is impossible. */
export const KERNEL_ENV_HINT =
  "or point the sandbox at a kernel with BUN_VFIO_KERNEL=/path/to/vmlinuz and BUN_VFIO_MODULES=/lib/modules/<version> " +
  "(it needs 9p, vfio, vfio_iommu_type1, vfio-pci and intel-iommu with IRQ remapping)";

/**
 * The kernel named by `BUN_VFIO_KERNEL` (a vmlinuz) and `BUN_VFIO_MODULES`
 * (its `/lib/modules/<version>` folder), or null when `BUN_VFIO_KERNEL` is
 * unset. Without `BUN_VFIO_MODULES`, `/lib/modules/<v>` is tried for a
 * kernel file named `vmlinuz-<v>`.
 */
export function kernelFromEnv(): GuestKernel | null {
  const vmlinuz = process.env.BUN_VFIO_KERNEL;
  if (!vmlinuz) {
    if (process.env.BUN_VFIO_MODULES) throw new SandboxError("BUN_VFIO_MODULES is set but BUN_VFIO_KERNEL is not: set both");
    return null;
  }
  if (!existsSync(vmlinuz)) throw new SandboxError(`BUN_VFIO_KERNEL=${vmlinuz} does not exist`);
  let modulesDir = process.env.BUN_VFIO_MODULES;
  if (!modulesDir) {
    const m = /^vmlinuz-(.+)$/.exec(basename(vmlinuz));
    if (m && existsSync(`/lib/modules/${m[1]}`)) modulesDir = `/lib/modules/${m[1]}`;
    else throw new SandboxError("BUN_VFIO_KERNEL is set: also set BUN_VFIO_MODULES to its /lib/modules/<version> folder");
  }
  if (!existsSync(modulesDir)) throw new SandboxError(`BUN_VFIO_MODULES=${modulesDir} does not exist`);
  return { version: bzImageVersion(vmlinuz) ?? basename(modulesDir), vmlinuz, modulesDir };
}

/**
 * The kernel release recorded in a bzImage header (the first word of the
 * string that `kernel_version`, at offset 0x20e, points to), or null when
 * the file is not a bzImage.
 * @param vmlinuz path of the kernel image
 */
export function bzImageVersion(vmlinuz: string): string | null {
  try {
    const head = Buffer.alloc(64 * 1024);
    const fd = openSync(vmlinuz, "r");
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    if (head.toString("latin1", 0x202, 0x206) !== "HdrS") return null;
    const ptr = head.readUInt16LE(0x20e) + 0x200;
    const end = head.indexOf(0, ptr);
    return head.toString("latin1", ptr, end < 0 ? ptr + 128 : end).split(" ")[0] || null;
  } catch {
    return null;
  }
}

/** The private apt options: our own sources, lists and cache; the system's config untouched. */
function aptOptions(aptDir: string): string[] {
  return [
    "-o", `Dir::Etc::SourceParts=${join(aptDir, "parts")}`,
    "-o", "Dir::Etc::SourceList=/dev/null",
    "-o", `Dir::State::Lists=${join(aptDir, "lists")}`,
    "-o", `Dir::Cache=${join(aptDir, "cache")}`,
    "-o", "APT::Sandbox::User=root",
  ];
}

/** The cached kernel recorded by a previous download, if complete. */
function cachedKernel(root: string): GuestKernel | null {
  const marker = join(root, "kernel", "current");
  if (!existsSync(marker)) return null;
  const version = readFileSync(marker, "utf8").trim();
  const dir = join(root, "kernel", version);
  const k = { version, vmlinuz: join(dir, "vmlinuz"), modulesDir: join(dir, "modules") };
  return existsSync(k.vmlinuz) && existsSync(k.modulesDir) ? k : null;
}

/**
 * Return the guest kernel: `BUN_VFIO_KERNEL`/`BUN_VFIO_MODULES` when set,
 * else the cached Debian kernel, else download it: derive a
 * `bookworm-backports` source from the system's apt sources, run
 * `apt-get update` with private state in the cache, resolve
 * `linux-image-amd64` to its versioned package with `apt-cache depends`,
 * `apt-get download` it and unpack with `dpkg-deb -x`. Each step is time-bounded.
 * Throws {@link SandboxError} with a fix when the download is impossible.
 */
export async function ensureKernel(): Promise<GuestKernel> {
  const fromEnv = kernelFromEnv();
  if (fromEnv) return fromEnv;
  const root = cacheDir();
  const cached = cachedKernel(root);
  if (cached) return cached;

  for (const tool of ["apt-get", "apt-cache", "dpkg-deb"]) {
    if (!Bun.which(tool)) throw new SandboxError(`cannot download the guest kernel: ${tool} is not available (not a Debian host?); ${KERNEL_ENV_HINT}`);
  }
  const source = deriveBackportsSource();
  if (!source) {
    throw new SandboxError(
      "cannot download the guest kernel: no Debian main archive found in /etc/apt/sources.list.d/debian.sources " +
        `or /etc/apt/sources.list to derive ${KERNEL_SUITE} from; ${KERNEL_ENV_HINT}`,
    );
  }
  const aptDir = join(root, "apt");
  for (const d of ["parts", "lists/partial", "cache/archives/partial"]) mkdirSync(join(aptDir, d), { recursive: true });
  for (const f of readdirSync(join(aptDir, "parts"))) rmSync(join(aptDir, "parts", f));
  writeFileSync(join(aptDir, "parts", source.fileName), source.text);
  const opts = aptOptions(aptDir);

  say(`updating the private ${KERNEL_SUITE} package list (source derived from ${source.from})`);
  const pkg = await fail("apt-get update / apt-cache depends", async () => {
    const update = await runTool(["apt-get", ...opts, "update"], { timeoutMs: APT_UPDATE_TIMEOUT_MS });
    const fetchError = /^(W: Failed to fetch|E: ).*$/m.exec(update.stdout + update.stderr);
    if (fetchError) throw new SandboxError(`apt-get update could not fetch ${KERNEL_SUITE}: ${fetchError[0]}`);
    const deps = await runTool(["apt-cache", ...opts, "depends", "linux-image-amd64"], { timeoutMs: 60_000 });
    const name = /Depends:\s*(linux-image-\d\S*)/.exec(deps.stdout)?.[1];
    if (!name) throw new SandboxError(`apt-cache depends linux-image-amd64 named no versioned kernel package:\n${deps.stdout}`);
    return name;
  });

  const work = join(root, "kernel", `.download-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    say(`downloading kernel ${pkg} from ${KERNEL_SUITE} ...`);
    await fail(`apt-get download ${pkg}`, () => runTool(["apt-get", ...opts, "download", pkg], { cwd: work, timeoutMs: DOWNLOAD_TIMEOUT_MS }));
    const deb = readdirSync(work).find((f) => f.endsWith(".deb"));
    if (!deb) throw new SandboxError(`apt-get download ${pkg} produced no .deb file`);
    say(`unpacking ${deb}`);
    await runTool(["dpkg-deb", "-x", join(work, deb), join(work, "x")], { timeoutMs: EXTRACT_TIMEOUT_MS });
    const boot = join(work, "x", "boot");
    const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
    const modRoot = [join(work, "x", "lib", "modules"), join(work, "x", "usr", "lib", "modules")].find(existsSync);
    if (!vmlinuz || !modRoot) throw new SandboxError(`${deb} holds no boot/vmlinuz-* or lib/modules`);
    const version = vmlinuz.slice("vmlinuz-".length);
    const dest = join(root, "kernel", version);
    const stage = join(work, "stage");
    mkdirSync(stage);
    renameSync(join(boot, vmlinuz), join(stage, "vmlinuz"));
    renameSync(join(modRoot, version), join(stage, "modules"));
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(dirname(dest), { recursive: true });
    renameSync(stage, dest);
    writeFileSync(join(root, "kernel", "current"), `${version}\n`);
    say(`kernel ${version} cached in ${dest}`);
    return { version, vmlinuz: join(dest, "vmlinuz"), modulesDir: join(dest, "modules") };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Run a download step; turn its failure into "cannot download the guest kernel" with the way around it. */
async function fail<T>(step: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new SandboxError(`cannot download the guest kernel (${step}): ${msg}\nCheck the network and apt proxy settings, ${KERNEL_ENV_HINT}`);
  }
}
