/**
 * Kernel modules for the guest: find them in a `/lib/modules/<version>`
 * folder, decompress them, read their dependencies from `.modinfo`, and put
 * them in load order.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SandboxError } from "./log.ts";

/**
 * Modules the guest loads, in order: 9p (for the host's file system and the
 * results share), then VFIO. Dependencies found in `.modinfo` are added
 * before their users automatically; built-in ones are skipped.
 */
export const GUEST_MODULES = [
  "netfs", "9pnet", "9pnet_virtio", "9p",
  "irqbypass", "vfio", "vfio_iommu_type1", "vfio-pci-core", "vfio-pci",
] as const;

/** A module ready to put in the initramfs. */
export interface GuestModule {
  /** Name with underscores, as the kernel knows it (`vfio_pci_core`). */
  name: string;
  /** Uncompressed `.ko` contents. */
  data: Uint8Array;
}

/** Kernel module names treat `-` and `_` alike. */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, "_");
}

const KO = /^(.*)\.ko(\.xz|\.zst|\.gz)?$/;

function indexModules(dir: string, out: Map<string, string>): void {
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) indexModules(p, out);
    else {
      const m = KO.exec(ent.name);
      if (m && !out.has(normalizeModuleName(m[1]!))) out.set(normalizeModuleName(m[1]!), p);
    }
  }
}

function builtinModules(modulesDir: string): Set<string> {
  const file = join(modulesDir, "modules.builtin");
  if (!existsSync(file)) return new Set();
  const names = readFileSync(file, "utf8")
    .split("\n")
    .map((l) => KO.exec(l.split("/").pop() ?? "")?.[1])
    .filter((n): n is string => !!n);
  return new Set(names.map(normalizeModuleName));
}

/**
 * Read the `depends=` entry of a module's `.modinfo` section.
 * @param ko uncompressed module contents
 * @returns dependency names (normalized), empty when none
 */
export function moduleDepends(ko: Uint8Array): string[] {
  const buf = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength);
  const at = buf.indexOf("\0depends=");
  if (at < 0) return [];
  const start = at + "\0depends=".length;
  const end = buf.indexOf(0, start);
  return buf
    .toString("latin1", start, end < 0 ? undefined : end)
    .split(",")
    .filter(Boolean)
    .map(normalizeModuleName);
}

async function readModule(path: string, xzCommand: string[]): Promise<Uint8Array> {
  if (path.endsWith(".ko")) return readFileSync(path);
  if (path.endsWith(".gz")) return Bun.gunzipSync(readFileSync(path));
  if (path.endsWith(".zst")) return Bun.zstdDecompressSync(readFileSync(path));
  const proc = Bun.spawn([...xzCommand, path], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
  const [data, err, code] = await Promise.all([
    new Response(proc.stdout).arrayBuffer(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  if (code !== 0) throw new SandboxError(`cannot decompress ${path} with ${xzCommand.join(" ")}: ${err.trim()}`);
  return new Uint8Array(data);
}

/**
 * Load `wanted` modules and their dependencies from `modulesDir`, in an
 * order where each module follows everything it depends on.
 * @param modulesDir a `/lib/modules/<version>` folder
 * @param xzCommand command that decompresses an `.xz` file to stdout
 * @param wanted module names (default {@link GUEST_MODULES})
 */
export async function resolveModules(
  modulesDir: string,
  xzCommand: string[],
  wanted: readonly string[] = GUEST_MODULES,
): Promise<GuestModule[]> {
  const index = new Map<string, string>();
  indexModules(join(modulesDir, "kernel"), index);
  const builtin = builtinModules(modulesDir);
  const out: GuestModule[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();

  const visit = async (raw: string, chain: string[]): Promise<void> => {
    const name = normalizeModuleName(raw);
    if (done.has(name) || builtin.has(name)) return;
    if (visiting.has(name)) throw new SandboxError(`module dependency cycle: ${[...chain, name].join(" -> ")}`);
    const path = index.get(name);
    if (!path) {
      throw new SandboxError(
        `kernel module ${name} not found in ${modulesDir} (and not built in)` +
          (chain.length ? `; needed by ${chain.join(" -> ")}` : ""),
      );
    }
    visiting.add(name);
    const data = await readModule(path, xzCommand);
    for (const dep of moduleDepends(data)) await visit(dep, [...chain, name]);
    visiting.delete(name);
    done.add(name);
    out.push({ name, data });
  };
  for (const w of wanted) await visit(w, []);
  return out;
}
