/**
 * The arm64 guest's initramfs, which is also its root: static arm64 busybox,
 * glibc's shared objects (for Bun, which is linked against glibc), a few
 * dynamically linked tools (prlimit, setpriv, lspci) with their libraries,
 * pci.ids, /init in its own-root form, and the kernel's modules in load
 * order. Bun itself stays
 * in the cache and is reached over 9p (90 MB unpacked under TCG at every
 * boot would cost more than reading the pages Bun touches).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { Arm64Userland } from "./arm64-guest.ts";
import { arm64CacheDir } from "./debian-arm64.ts";
import { buildCpio, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, type CpioEntry } from "./cpio.ts";
import { initScript } from "./init-script.ts";
import type { GuestKernel } from "./kernel.ts";
import { say } from "./log.ts";
import { GUEST_MODULES, resolveModules } from "./modules.ts";
import { xzDecompressCommand } from "./tools.ts";

/** Where glibc's objects go, and the dynamic loader Bun asks for (`/lib/ld-linux-aarch64.so.1`, with /lib a link to usr/lib). */
const LIB_DIR = "usr/lib/aarch64-linux-gnu";

function glibcEntries(libc: string): CpioEntry[] {
  const src = join(libc, LIB_DIR);
  return readdirSync(src, { withFileTypes: true })
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && /\.so(\.\d+)*$/.test(e.name))
    .map((e) => e.isSymbolicLink()
      ? { path: `${LIB_DIR}/${e.name}`, mode: S_IFLNK | 0o777, data: readlinkSync(join(src, e.name)) }
      : { path: `${LIB_DIR}/${e.name}`, mode: S_IFREG | 0o755, data: readFileSync(join(src, e.name)) });
}

/** The folders above a relative path that the fixed folder list lacks, outermost first: `usr/share/misc/x` gives `usr/share`, `usr/share/misc`. */
function parents(path: string): string[] {
  const parts = path.split("/").slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join("/")).filter((d) => d !== "usr");
}

/**
 * Path of the arm64 initramfs for `kernel`, built when the cache has none
 * for the same inputs (init script, module list, kernel, busybox, glibc).
 * @param kernel the arm64 guest kernel whose modules go in
 * @param userland busybox and glibc from `ensureArm64Userland`
 * @param hostBusybox the host's static busybox, whose `xz` decompresses modules when the host has no `xz`
 */
export async function ensureArm64Initramfs(kernel: GuestKernel, userland: Arm64Userland, hostBusybox: string): Promise<string> {
  const script = initScript({ ownRoot: true });
  const bb = statSync(userland.busybox);
  const libc = statSync(join(userland.libc, LIB_DIR, "libc.so.6"));
  const key = Bun.hash(JSON.stringify([script, GUEST_MODULES, kernel.version, statSync(kernel.modulesDir).mtimeMs, bb.size, bb.mtimeMs, libc.size, libc.mtimeMs, userland.libs, userland.bins, userland.files.map((f) => [f.path, statSync(f.src).size, statSync(f.src).mtimeMs])])).toString(16);
  const dir = join(arm64CacheDir(), "initramfs");
  const path = join(dir, `${kernel.version}-${key}.cpio.gz`);
  if (existsSync(path)) return path;

  say(`building the arm64 initramfs for ${kernel.version} (busybox, glibc, modules)`);
  const modules = await resolveModules(kernel.modulesDir, xzDecompressCommand(hostBusybox));
  const dirs = ["bin", "dev", "proc", "sys", "tmp", "host", "share", "etc", "usr", "usr/lib", LIB_DIR, "usr/local", "usr/local/bin"];
  const entries: CpioEntry[] = [
    ...dirs.map((d) => ({ path: d, mode: S_IFDIR | 0o755 })),
    { path: "lib", mode: S_IFLNK | 0o777, data: "usr/lib" },
    { path: "usr/lib/ld-linux-aarch64.so.1", mode: S_IFLNK | 0o777, data: "aarch64-linux-gnu/ld-linux-aarch64.so.1" },
    { path: "usr/lib/modules", mode: S_IFDIR | 0o755 },
    { path: "dev/console", mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
    { path: "bin/busybox", mode: S_IFREG | 0o755, data: readFileSync(userland.busybox) },
    { path: "etc/passwd", mode: S_IFREG | 0o644, data: "root:x:0:0:root:/tmp:/bin/sh\n" },
    { path: "etc/group", mode: S_IFREG | 0o644, data: "root:x:0:\n" },
    { path: "init", mode: S_IFREG | 0o755, data: script },
    ...glibcEntries(userland.libc),
    ...userland.libs.flatMap(glibcEntries),
    { path: "usr/bin", mode: S_IFDIR | 0o755 },
    ...userland.bins.map((b) => ({ path: `usr/bin/${basename(b)}`, mode: S_IFREG | 0o755, data: readFileSync(b) })),
    ...[...new Set(userland.files.flatMap((f) => parents(f.path)))].map((d) => ({ path: d, mode: S_IFDIR | 0o755 })),
    ...userland.files.map((f) => ({ path: f.path, mode: S_IFREG | 0o644, data: readFileSync(f.src) })),
    ...modules.map((m) => ({ path: `usr/lib/modules/${m.name}.ko`, mode: S_IFREG | 0o644, data: m.data })),
    { path: "usr/lib/modules/order", mode: S_IFREG | 0o644, data: `${modules.map((m) => m.name).join("\n")}\n` },
  ];
  const gz = Bun.gzipSync(buildCpio(entries), { level: 1 });
  mkdirSync(dir, { recursive: true });
  for (const old of readdirSync(dir)) if (old.startsWith(`${kernel.version}-`)) rmSync(join(dir, old), { force: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, gz);
  renameSync(tmp, path);
  return path;
}
