/**
 * Debian's prebuilt x86-64 kernel (linux-image from bookworm-backports, with
 * its modules), fetched with the private apt configuration into the cache.
 * Used only when asked for (`BUN_VFIO_KERNEL=debian`): the sandbox builds its
 * own kernel by default, since Debian's has no IOMMUFD, VFIO_DEVICE_CDEV or
 * VFIO_NOIOMMU.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { KERNEL_SUITE } from "./apt-sources.ts";
import type { GuestKernel } from "./kernel-types.ts";
import { SandboxError, say } from "./log.ts";
import { cacheDir } from "./paths.ts";
import { updatePrivateApt } from "./private-apt.ts";
import { runTool } from "./proc.ts";

const DOWNLOAD_TIMEOUT_MS = 15 * 60_000;
const EXTRACT_TIMEOUT_MS = 5 * 60_000;

/** How to get past a failed download. */
const DEBIAN_HINT = "or unset BUN_VFIO_KERNEL to let the sandbox build its own kernel";

/** The cached kernel recorded by a previous download, if complete. */
function cachedDebianKernel(root: string): GuestKernel | null {
  const marker = join(root, "kernel", "current");
  if (!existsSync(marker)) return null;
  const version = readFileSync(marker, "utf8").trim();
  const dir = join(root, "kernel", version);
  const k = { version, vmlinuz: join(dir, "vmlinuz"), modulesDir: join(dir, "modules") };
  return existsSync(k.vmlinuz) && existsSync(k.modulesDir) ? k : null;
}

/**
 * Debian's bookworm-backports kernel, cached or downloaded: `apt-get update`
 * with private state in the cache, resolve `linux-image-amd64` to its
 * versioned package with `apt-cache depends`, `apt-get download` it and
 * unpack with `dpkg-deb -x`. Each step is time-bounded.
 * @throws SandboxError with a fix when the download is impossible
 */
export async function ensureDebianKernel(): Promise<GuestKernel> {
  const root = cacheDir();
  const cached = cachedDebianKernel(root);
  if (cached) return cached;
  const opts = await updatePrivateApt("download Debian's guest kernel", DEBIAN_HINT);
  const pkg = await fail("apt-cache depends", async () => {
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
    throw new SandboxError(`cannot download Debian's guest kernel (${step}): ${msg}\nCheck the network and apt proxy settings, ${DEBIAN_HINT}`);
  }
}
