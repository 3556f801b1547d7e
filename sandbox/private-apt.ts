/**
 * A private apt configuration in the cache for the bookworm-backports suite:
 * our own sources, lists and archive cache, so the sandbox downloads Debian
 * packages (the kernel image or its source) without touching the system's
 * apt state.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deriveBackportsSource, KERNEL_SUITE } from "./apt-sources.ts";
import { SandboxError, say } from "./log.ts";
import { cacheDir } from "./paths.ts";
import { runTool } from "./proc.ts";

const APT_UPDATE_TIMEOUT_MS = 5 * 60_000;

/** The apt options that point apt-get / apt-cache at the private state in `aptDir`. */
export function aptOptions(aptDir: string): string[] {
  return [
    "-o", `Dir::Etc::SourceParts=${join(aptDir, "parts")}`,
    "-o", "Dir::Etc::SourceList=/dev/null",
    "-o", `Dir::State::Lists=${join(aptDir, "lists")}`,
    "-o", `Dir::Cache=${join(aptDir, "cache")}`,
    "-o", "APT::Sandbox::User=root",
  ];
}

/**
 * Derive the backports source from the system's apt sources, write it into
 * `<cache>/apt`, run `apt-get update` there and return the apt options for
 * later `apt-cache`/`apt-get download` calls.
 * @param what what the packages are for, named in errors ("download the guest kernel")
 * @param hint the way around a failure, appended to errors
 * @throws SandboxError when apt is missing, no source can be derived, or the update fails
 */
export async function updatePrivateApt(what: string, hint: string): Promise<string[]> {
  for (const tool of ["apt-get", "apt-cache", "dpkg-deb"]) {
    if (!Bun.which(tool)) throw new SandboxError(`cannot ${what}: ${tool} is not available (not a Debian host?); ${hint}`);
  }
  const source = deriveBackportsSource();
  if (!source) {
    throw new SandboxError(
      `cannot ${what}: no Debian main archive found in /etc/apt/sources.list.d/debian.sources ` +
        `or /etc/apt/sources.list to derive ${KERNEL_SUITE} from; ${hint}`,
    );
  }
  const aptDir = join(cacheDir(), "apt");
  for (const d of ["parts", "lists/partial", "cache/archives/partial"]) mkdirSync(join(aptDir, d), { recursive: true });
  for (const f of readdirSync(join(aptDir, "parts"))) rmSync(join(aptDir, "parts", f));
  writeFileSync(join(aptDir, "parts", source.fileName), source.text);
  const opts = aptOptions(aptDir);
  say(`updating the private ${KERNEL_SUITE} package list (source derived from ${source.from})`);
  try {
    const update = await runTool(["apt-get", ...opts, "update"], { timeoutMs: APT_UPDATE_TIMEOUT_MS });
    const fetchError = /^(W: Failed to fetch|E: ).*$/m.exec(update.stdout + update.stderr);
    if (fetchError) throw new SandboxError(`apt-get update could not fetch ${KERNEL_SUITE}: ${fetchError[0]}`);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new SandboxError(`cannot ${what} (apt-get update): ${msg}\nCheck the network and apt proxy settings, ${hint}`);
  }
  return opts;
}
