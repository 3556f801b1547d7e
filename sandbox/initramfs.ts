/**
 * Build (and cache) the guest's initramfs: static busybox, /init, the
 * modules in load order, a /dev/console node. Written as a newc cpio in
 * TypeScript and gzipped with Bun, so no `cpio` binary is needed.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { buildCpio, S_IFCHR, S_IFDIR, S_IFREG, type CpioEntry } from "./cpio.ts";
import { initScript } from "./init-script.ts";
import type { GuestKernel } from "./kernel.ts";
import { GUEST_MODULES, resolveModules } from "./modules.ts";
import { say } from "./log.ts";
import { cacheDir } from "./paths.ts";
import { xzDecompressCommand } from "./tools.ts";

/**
 * Path of an initramfs for `kernel`, building it when the cache has none
 * for the same inputs (init script, module list, kernel, busybox). The
 * modules the kernel has built in are left out (none, for the sandbox's own).
 * One image is kept per module list (profiles that load extra modules have
 * their own, unless the kernel has everything built in).
 * @param kernel the guest kernel whose modules go in
 * @param busybox path of a static busybox
 * @param extraModules modules beyond {@link GUEST_MODULES} (a profile's `modules`)
 */
export async function ensureInitramfs(kernel: GuestKernel, busybox: string, extraModules: readonly string[] = []): Promise<string> {
  const script = initScript();
  const bb = statSync(busybox);
  // A kernel with everything built in (the sandbox's own) gets an empty load order.
  const extra = kernel.builtIn ? [] : extraModules;
  const wanted = kernel.builtIn ? [] : [...GUEST_MODULES, ...extra];
  const key = Bun.hash(
    JSON.stringify([script, wanted, kernel.version, kernel.vmlinuz, statSync(kernel.builtIn ? kernel.vmlinuz : kernel.modulesDir).mtimeMs, bb.size, bb.mtimeMs]),
  ).toString(16);
  const dir = join(cacheDir(), "initramfs");
  const set = extra.length ? `plus-${Bun.hash(extra.join(",")).toString(16)}` : "base";
  const path = join(dir, `${kernel.version}-${set}-${key}.cpio.gz`);
  if (existsSync(path)) return path;

  say(`building initramfs for ${kernel.version}`);
  const modules = wanted.length ? await resolveModules(kernel.modulesDir, xzDecompressCommand(busybox), wanted) : [];
  const dirs = ["bin", "dev", "proc", "sys", "root", "share", "lib", "lib/modules"];
  const entries: CpioEntry[] = [
    ...dirs.map((d) => ({ path: d, mode: S_IFDIR | 0o755 })),
    { path: "dev/console", mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
    { path: "bin/busybox", mode: S_IFREG | 0o755, data: readFileSync(busybox) },
    { path: "init", mode: S_IFREG | 0o755, data: script },
    ...modules.map((m) => ({ path: `lib/modules/${m.name}.ko`, mode: S_IFREG | 0o644, data: m.data })),
    { path: "lib/modules/order", mode: S_IFREG | 0o644, data: `${modules.map((m) => m.name).join("\n")}\n` },
  ];
  const gz = Bun.gzipSync(buildCpio(entries), { level: 1 });
  mkdirSync(dir, { recursive: true });
  // Stale images: another kernel, or this module list built from older inputs.
  for (const old of readdirSync(dir)) {
    if (old.endsWith(".cpio.gz") && (!old.startsWith(`${kernel.version}-`) || old.startsWith(`${kernel.version}-${set}-`))) rmSync(join(dir, old), { force: true });
  }
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, gz);
  renameSync(tmp, path);
  return path;
}
