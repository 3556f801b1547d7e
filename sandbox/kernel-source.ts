/**
 * The guest kernel's source: Debian's `linux-source-6.12` package from
 * bookworm-backports (Debian's patched tree), at the version pinned here,
 * downloaded with the private apt configuration and unpacked into
 * `<cache>/kernel-build/<version>/`.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KERNEL_SUITE } from "./apt-sources.ts";
import { SandboxError, say } from "./log.ts";
import { cacheDir } from "./paths.ts";
import { updatePrivateApt } from "./private-apt.ts";
import { runTool } from "./proc.ts";

/** Debian's kernel source package. */
export const SOURCE_PACKAGE = "linux-source-6.12";
/** The version the sandbox is tested with; when the archive no longer has it, its candidate is used (and both are printed). */
export const PINNED_SOURCE_VERSION = "6.12.95-1~bpo12+1";

const DOWNLOAD_TIMEOUT_MS = 15 * 60_000;
const UNPACK_TIMEOUT_MS = 10 * 60_000;
/** Written last into an unpacked tree: its absence means the unpacking did not finish. */
const UNPACKED_MARK = ".bun-vfio-unpacked";

/** How to avoid the build, appended to errors. */
export const BUILD_HINT =
  "or point the sandbox at a kernel with BUN_VFIO_KERNEL=/path/to/bzImage (see README, \"The sandbox's kernel\"; " +
  "BUN_VFIO_KERNEL=debian uses Debian's prebuilt kernel, which lacks iommufd and no-IOMMU)";

/** The build root: `<cache>/kernel-build`. */
export function kernelBuildRoot(): string {
  return join(cacheDir(), "kernel-build");
}

/** A Debian version as a folder name (`6.12.95-1~bpo12+1` to `6.12.95-1-bpo12-1`): `~` and `+` upset make. */
export function versionDirName(version: string): string {
  return version.replace(/[^A-Za-z0-9.-]/g, "-");
}

/** An unpacked kernel source tree. */
export interface KernelSource {
  /** Debian version of the source package. */
  version: string;
  /** Folder of this version's source and objects: `<cache>/kernel-build/<version>`. */
  dir: string;
  /** The source tree (holds the top Makefile). */
  tree: string;
}

function sourceAt(version: string): KernelSource {
  const dir = join(kernelBuildRoot(), versionDirName(version));
  return { version, dir, tree: join(dir, SOURCE_PACKAGE) };
}

/** The unpacked source of `version`, or null when it is not (completely) unpacked. */
export function unpackedSource(version: string): KernelSource | null {
  const s = sourceAt(version);
  return existsSync(join(s.tree, UNPACKED_MARK)) ? s : null;
}

/**
 * The versions of {@link SOURCE_PACKAGE} the archive offers, newest first,
 * from `apt-cache madison` (one `pkg | version | source` line each).
 * @param madison the command's output
 */
export function madisonVersions(madison: string): string[] {
  return madison
    .split("\n")
    .map((l) => l.split("|").map((f) => f.trim()))
    .filter((f) => f.length >= 3 && f[0] === SOURCE_PACKAGE)
    .map((f) => f[1]!);
}

/**
 * The source version to build: the pinned one when the archive has it, else
 * the archive's newest, with a note naming both versions.
 * @param available versions the archive offers, newest first
 * @throws SandboxError when the archive offers none
 */
export function chooseSourceVersion(available: readonly string[]): { version: string; note?: string } {
  if (available.includes(PINNED_SOURCE_VERSION)) return { version: PINNED_SOURCE_VERSION };
  const candidate = available[0];
  if (!candidate) throw new SandboxError(`${KERNEL_SUITE} offers no ${SOURCE_PACKAGE}; ${BUILD_HINT}`);
  return {
    version: candidate,
    note: `NOTE: the pinned kernel source ${SOURCE_PACKAGE} ${PINNED_SOURCE_VERSION} is gone from ${KERNEL_SUITE}; ` +
      `building the archive's candidate ${candidate} instead (update PINNED_SOURCE_VERSION in sandbox/kernel-source.ts once it passes the suites)`,
  };
}

/**
 * The kernel source to build: the pinned version if already unpacked (no
 * network), else resolved through apt (pinned, or the candidate when the
 * pinned one is gone), downloaded and unpacked. Unpacking a new version
 * removes the trees of other versions (about 1.7 GB each with objects).
 */
export async function ensureKernelSource(): Promise<KernelSource> {
  const pinned = unpackedSource(PINNED_SOURCE_VERSION);
  if (pinned) return pinned;
  const what = `fetch the kernel source ${SOURCE_PACKAGE}`;
  const opts = await updatePrivateApt(what, BUILD_HINT);
  const madison = await runTool(["apt-cache", ...opts, "madison", SOURCE_PACKAGE], { timeoutMs: 60_000 });
  const { version, note } = chooseSourceVersion(madisonVersions(madison.stdout));
  if (note) say(note);
  const ready = unpackedSource(version);
  if (ready) return ready;

  const src = sourceAt(version);
  const dl = join(kernelBuildRoot(), `.download-${process.pid}`);
  rmSync(dl, { recursive: true, force: true });
  mkdirSync(dl, { recursive: true });
  try {
    say(`downloading ${SOURCE_PACKAGE} ${version} from ${KERNEL_SUITE} (about 150 MB) ...`);
    try {
      await runTool(["apt-get", ...opts, "download", `${SOURCE_PACKAGE}=${version}`], { cwd: dl, timeoutMs: DOWNLOAD_TIMEOUT_MS });
    } catch (e) {
      throw new SandboxError(`cannot ${what} (apt-get download): ${(e as Error).message}\nCheck the network and apt proxy settings, ${BUILD_HINT}`);
    }
    const deb = readdirSync(dl).find((f) => f.endsWith(".deb"));
    if (!deb) throw new SandboxError(`apt-get download ${SOURCE_PACKAGE}=${version} produced no .deb file`);
    say(`unpacking ${deb}`);
    await runTool(["dpkg-deb", "-x", join(dl, deb), join(dl, "x")], { timeoutMs: UNPACK_TIMEOUT_MS });
    const tarDir = join(dl, "x", "usr", "src");
    const tarball = readdirSync(tarDir).find((f) => /^linux-source-.*\.tar\.(xz|gz|bz2|zst)$/.test(f));
    if (!tarball) throw new SandboxError(`${deb} holds no usr/src/linux-source-*.tar.*`);
    for (const old of readdirSync(kernelBuildRoot())) {
      if (!old.startsWith(".") && old !== versionDirName(version)) rmSync(join(kernelBuildRoot(), old), { recursive: true, force: true });
    }
    rmSync(src.tree, { recursive: true, force: true });
    mkdirSync(src.dir, { recursive: true });
    await runTool(["tar", "-xf", join(tarDir, tarball), "-C", src.dir], { timeoutMs: UNPACK_TIMEOUT_MS });
    if (!existsSync(join(src.tree, "Makefile"))) throw new SandboxError(`${tarball} did not unpack to ${src.tree}`);
    writeFileSync(join(src.tree, UNPACKED_MARK), `${SOURCE_PACKAGE} ${version}\n`);
    return src;
  } finally {
    rmSync(dl, { recursive: true, force: true });
  }
}
