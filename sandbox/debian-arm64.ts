/**
 * Debian arm64 packages for the arm64 guest (kernels, glibc, busybox),
 * fetched with a private apt configuration of their own: the `trixie` suite
 * derived from the system's sources, `APT::Architectures` set to arm64, lists
 * and downloads in the cache. The system's apt configuration is never touched.
 */
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deriveBackportsSource } from "./apt-sources.ts";
import { SandboxError, say } from "./log.ts";
import { cacheDir } from "./paths.ts";
import { runTool } from "./proc.ts";

/** The suite holding the arm64 guest's packages (Debian 13: linux-image 6.12 with a 16 KiB flavour). */
export const ARM64_SUITE = "trixie";

/** Package lists older than this are refreshed before resolving a name. */
const LISTS_MAX_AGE_MS = 7 * 24 * 3600_000;

/** The arm64 part of the cache: `<cache>/arm64`. */
export function arm64CacheDir(): string {
  return join(cacheDir(), "arm64");
}

function aptDir(): string {
  return join(arm64CacheDir(), "apt");
}

/** The private apt configuration file: arm64 is the only architecture, nothing of the host's state. */
export const ARM64_APT_CONF = '#clear APT::Architectures;\nAPT::Architectures { "arm64"; };\nAPT::Architecture "arm64";\n';

function aptOptions(dir: string): string[] {
  return [
    "-c", join(dir, "apt.conf"),
    "-o", `Dir::Etc::SourceParts=${join(dir, "parts")}`,
    "-o", "Dir::Etc::SourceList=/dev/null",
    "-o", `Dir::State::Lists=${join(dir, "lists")}`,
    "-o", "Dir::State::status=/dev/null",
    "-o", `Dir::Cache=${join(dir, "cache")}`,
    "-o", "APT::Sandbox::User=root",
  ];
}

let updated = false;

/**
 * Prepare the private apt state and run `apt-get update` when the lists are
 * missing or older than a week. Returns the apt options to pass to
 * apt-get / apt-cache.
 * @throws SandboxError naming the step and the way around it
 */
export async function arm64Apt(): Promise<string[]> {
  const dir = aptDir();
  const opts = aptOptions(dir);
  if (updated) return opts;
  for (const tool of ["apt-get", "apt-cache", "dpkg-deb"]) {
    if (!Bun.which(tool)) throw new SandboxError(`cannot fetch the arm64 guest's packages: ${tool} is not available (not a Debian host?)`);
  }
  const source = deriveBackportsSource("/etc/apt", undefined, ARM64_SUITE);
  if (!source) throw new SandboxError(`cannot fetch the arm64 guest's packages: no Debian main archive in /etc/apt to derive ${ARM64_SUITE} from`);
  for (const d of ["parts", "lists/partial", "cache/archives/partial"]) mkdirSync(join(dir, d), { recursive: true });
  for (const f of readdirSync(join(dir, "parts"))) rmSync(join(dir, "parts", f));
  writeFileSync(join(dir, "parts", source.fileName), source.text);
  writeFileSync(join(dir, "apt.conf"), ARM64_APT_CONF);
  const lists = readdirSync(join(dir, "lists")).filter((f) => /_Packages(\.\w+)?$/.test(f)); // apt may keep them compressed (`_Packages.lz4`)
  const fresh = lists.length > 0 && lists.every((f) => Date.now() - statSync(join(dir, "lists", f)).mtimeMs < LISTS_MAX_AGE_MS);
  if (!fresh) {
    say(`updating the private ${ARM64_SUITE} arm64 package list (source derived from ${source.from})`);
    const r = await runTool(["apt-get", ...opts, "update"], { timeoutMs: 5 * 60_000 });
    const err = /^(W: Failed to fetch|E: ).*$/m.exec(r.stdout + r.stderr);
    if (err) throw new SandboxError(`apt-get update could not fetch ${ARM64_SUITE} (arm64): ${err[0]}`);
  }
  updated = true;
  return opts;
}

/**
 * The versioned kernel package behind a Debian meta package, preferring the
 * `-unsigned` build (same kernel, no EFI signature): `linux-image-arm64-16k`
 * to `linux-image-6.12.X+deb13-arm64-16k-unsigned`.
 * @param meta `linux-image-arm64` or `linux-image-arm64-16k`
 */
export async function resolveKernelPackage(meta: string): Promise<string> {
  const opts = await arm64Apt();
  const deps = await runTool(["apt-cache", ...opts, "depends", meta], { timeoutMs: 60_000 });
  const name = /Depends:\s*(linux-image-\d\S*)/.exec(deps.stdout)?.[1];
  if (!name) throw new SandboxError(`apt-cache depends ${meta} (${ARM64_SUITE}, arm64) named no versioned kernel package:\n${deps.stdout}`);
  if (name.endsWith("-unsigned")) return name;
  const show = await runTool(["apt-cache", ...opts, "show", `${name}-unsigned`], { timeoutMs: 60_000, check: false });
  return show.code === 0 && show.stdout.includes("Package:") ? `${name}-unsigned` : name;
}

/**
 * `apt-get download` one arm64 package and unpack it with `dpkg-deb -x`
 * into `dest` (created; removed first).
 * @param pkg package name (arm64 is the private configuration's only architecture)
 * @param dest folder that receives the package's files
 */
export async function downloadAndUnpack(pkg: string, dest: string): Promise<void> {
  const opts = await arm64Apt();
  const work = `${dest}.download-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    say(`downloading ${pkg} (${ARM64_SUITE}, arm64) ...`);
    await runTool(["apt-get", ...opts, "download", pkg], { cwd: work, timeoutMs: 15 * 60_000 });
    const deb = readdirSync(work).find((f) => f.endsWith(".deb"));
    if (!deb) throw new SandboxError(`apt-get download ${pkg} produced no .deb file`);
    rmSync(dest, { recursive: true, force: true });
    await runTool(["dpkg-deb", "-x", join(work, deb), dest], { timeoutMs: 5 * 60_000 });
  } catch (e) {
    rmSync(dest, { recursive: true, force: true });
    const msg = e instanceof Error ? e.message : String(e);
    throw new SandboxError(`cannot fetch ${pkg} for the arm64 guest: ${msg}\nCheck the network and apt proxy settings.`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
