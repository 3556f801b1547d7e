/**
 * What the arm64 guest boots and runs, fetched once into `<cache>/arm64`:
 * Debian trixie's arm64 kernel (4 KiB or 16 KiB pages) with its modules,
 * busybox-static, glibc, util-linux's prlimit/setpriv and pciutils' lspci
 * (with pci.ids) for arm64, and Bun for aarch64 from the npm
 * registry at the host Bun's version. The x86 trick of chrooting into the
 * host's root cannot work for another architecture, so the guest gets a small
 * root of its own and sees the project over 9p.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { arm64CacheDir, downloadAndUnpack, resolveKernelPackage } from "./debian-arm64.ts";
import type { GuestKernel } from "./kernel.ts";
import { SandboxError, say } from "./log.ts";
import { runTool } from "./proc.ts";

/** Debian's kernel meta package of a page size. */
export function kernelMetaPackage(pageKiB: 4 | 16): string {
  return pageKiB === 16 ? "linux-image-arm64-16k" : "linux-image-arm64";
}

/**
 * The arm64 guest kernel of a page size: cached, else resolved from the meta
 * package (`linux-image-arm64[-16k]` to its `-unsigned` build), downloaded and
 * unpacked. The vmlinuz is a gzipped arm64 Image, which QEMU's `-kernel` loads.
 * @param pageKiB 4 or 16
 */
export async function ensureArm64Kernel(pageKiB: 4 | 16): Promise<GuestKernel> {
  const root = join(arm64CacheDir(), "kernel", `${pageKiB}k`);
  const marker = join(root, "current");
  if (existsSync(marker)) {
    const version = readFileSync(marker, "utf8").trim();
    const k = { version, vmlinuz: join(root, version, "vmlinuz"), modulesDir: join(root, version, "modules") };
    if (existsSync(k.vmlinuz) && existsSync(k.modulesDir)) return k;
  }
  const pkg = await resolveKernelPackage(kernelMetaPackage(pageKiB));
  const x = join(root, ".unpacked");
  await downloadAndUnpack(pkg, x);
  try {
    const vmlinuz = readdirSync(join(x, "boot")).find((f) => f.startsWith("vmlinuz-"));
    const modRoot = [join(x, "usr", "lib", "modules"), join(x, "lib", "modules")].find(existsSync);
    if (!vmlinuz || !modRoot) throw new SandboxError(`${pkg} holds no boot/vmlinuz-* or lib/modules`);
    const version = vmlinuz.slice("vmlinuz-".length);
    const dest = join(root, version);
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(dest, { recursive: true });
    renameSync(join(x, "boot", vmlinuz), join(dest, "vmlinuz"));
    renameSync(join(modRoot, version), join(dest, "modules"));
    writeFileSync(marker, `${version}\n`);
    say(`arm64 kernel ${version} cached in ${dest}`);
    return { version, vmlinuz: join(dest, "vmlinuz"), modulesDir: join(dest, "modules") };
  } finally {
    rmSync(x, { recursive: true, force: true });
  }
}

/** The arm64 userland the initramfs is built from. */
export interface Arm64Userland {
  /** Static arm64 busybox. */
  busybox: string;
  /** Unpacked libc6:arm64 (holds `usr/lib/aarch64-linux-gnu` and `usr/lib/ld-linux-aarch64.so.1`). */
  libc: string;
  /** More unpacked packages whose `usr/lib/aarch64-linux-gnu/*.so*` go in (the libraries of the binaries below). */
  libs: string[];
  /** Binaries copied to `usr/bin` (util-linux's prlimit and setpriv for the memlock test, pciutils' lspci for the CLI tests). */
  bins: string[];
  /** Data files: host path and the path in the guest's root (pci.ids, read by lspci and by bun-vfio's names). */
  files: { src: string; path: string }[];
}

async function ensurePackage(pkg: string, probe: string): Promise<string> {
  const dest = join(arm64CacheDir(), "pkgs", pkg);
  if (!existsSync(join(dest, probe))) {
    await downloadAndUnpack(pkg, dest);
    if (!existsSync(join(dest, probe))) throw new SandboxError(`${pkg} (arm64) holds no ${probe}`);
  }
  return dest;
}

const LIBS = "usr/lib/aarch64-linux-gnu";

/**
 * Library packages the guest's extra binaries link against (trixie's
 * `Depends:`): util-linux needs libsmartcols1 and libcap-ng0; pciutils needs
 * libpci3 and libkmod2, which pull in libudev1 (libcap2), zlib1g and
 * libssl3t64 (libkmod's libcrypto, which needs libzstd1).
 */
const LIB_PACKAGES = ["libsmartcols1", "libcap-ng0", "libpci3", "libkmod2", "libudev1", "libcap2", "zlib1g", "libssl3t64", "libzstd1"];

/** Where Debian's `pci.ids` package puts the database (the first place lspci and bun-vfio look). */
export const PCI_IDS_PATH = "usr/share/misc/pci.ids";

/** busybox-static, libc6, util-linux's prlimit/setpriv, pciutils' lspci with its libraries and pci.ids for arm64, downloaded once. */
export async function ensureArm64Userland(): Promise<Arm64Userland> {
  const bb = await ensurePackage("busybox-static", "usr/bin/busybox");
  const libc = await ensurePackage("libc6", `${LIBS}/libc.so.6`);
  const ul = await ensurePackage("util-linux", "usr/bin/prlimit");
  const pciutils = await ensurePackage("pciutils", "usr/bin/lspci");
  const ids = await ensurePackage("pci.ids", PCI_IDS_PATH);
  const libs: string[] = [];
  for (const pkg of LIB_PACKAGES) libs.push(await ensurePackage(pkg, LIBS));
  return {
    busybox: join(bb, "usr", "bin", "busybox"),
    libc,
    libs,
    bins: [join(ul, "usr/bin/prlimit"), join(ul, "usr/bin/setpriv"), join(pciutils, "usr/bin/lspci")],
    files: [{ src: realpathSync(join(ids, PCI_IDS_PATH)), path: PCI_IDS_PATH }],
  };
}

/** The npm package holding Bun for Linux on aarch64 (glibc). */
export const BUN_AARCH64_PACKAGE = "@oven/bun-linux-aarch64";

/**
 * Bun for aarch64 at the host Bun's version (`Bun.version`), from the npm
 * registry with `npm pack`, unpacked with `tar`; cached per version.
 * @returns path of the arm64 `bun` binary on the host
 */
export async function ensureGuestBun(version: string = Bun.version): Promise<string> {
  const dir = join(arm64CacheDir(), "bun", version);
  const bin = join(dir, "bun");
  if (existsSync(bin)) return bin;
  for (const tool of ["npm", "tar"]) {
    if (!Bun.which(tool)) throw new SandboxError(`cannot fetch Bun for the arm64 guest: ${tool} is not available (install Node.js and npm)`);
  }
  const work = `${dir}.download-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    say(`downloading ${BUN_AARCH64_PACKAGE}@${version} with npm pack (Bun for the arm64 guest) ...`);
    await runTool(["npm", "pack", "--silent", `${BUN_AARCH64_PACKAGE}@${version}`], { cwd: work, timeoutMs: 10 * 60_000 });
    const tgz = readdirSync(work).find((f) => f.endsWith(".tgz"));
    if (!tgz) throw new SandboxError(`npm pack ${BUN_AARCH64_PACKAGE}@${version} produced no .tgz`);
    await runTool(["tar", "-xzf", tgz], { cwd: work, timeoutMs: 5 * 60_000 });
    const got = join(work, "package", "bin", "bun");
    if (!existsSync(got)) throw new SandboxError(`${BUN_AARCH64_PACKAGE}@${version} holds no package/bin/bun`);
    mkdirSync(dir, { recursive: true });
    renameSync(got, bin);
    say(`Bun ${version} for aarch64 cached in ${dir}`);
    return bin;
  } catch (e) {
    if (e instanceof SandboxError) throw new SandboxError(`cannot fetch Bun for the arm64 guest: ${e.message}`);
    throw e;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
