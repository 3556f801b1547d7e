/**
 * Derive a private apt source for the backports suite from the system's own
 * apt sources (same mirror URIs and keyring), so the sandbox never names a
 * package host itself and never edits the system's apt configuration.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The suite holding the guest kernel (Debian 12 backports: linux-image 6.12). */
export const KERNEL_SUITE = "bookworm-backports";

/** One deb822 stanza: field name (as written) to raw value (continuation lines kept). */
export type Stanza = Map<string, string>;

/**
 * Parse a deb822 `.sources` file into stanzas. Comments (`#`) are dropped;
 * continuation lines (leading space) are kept in the value, so a multi-line
 * inline `Signed-By` key survives.
 * @param text the file's contents
 */
export function parseDeb822(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  let cur: Stanza = new Map();
  let last: string | null = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    if (line.trim() === "") {
      if (cur.size) stanzas.push(cur);
      cur = new Map();
      last = null;
      continue;
    }
    if (/^[ \t]/.test(line) && last) {
      cur.set(last, `${cur.get(last)}\n${line}`);
      continue;
    }
    const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
    if (m) {
      last = m[1]!;
      cur.set(last, m[2]!.trim());
    }
  }
  if (cur.size) stanzas.push(cur);
  return stanzas;
}

function field(s: Stanza, name: string): string | undefined {
  for (const [k, v] of s) if (k.toLowerCase() === name.toLowerCase()) return v;
  return undefined;
}

/**
 * From deb822 stanzas, build the backports stanza: take the first `deb`
 * stanza whose `Suites` list the release `codename` itself (the main archive,
 * not `-security` or a third-party repository) and copy its `URIs` and
 * `Signed-By` with `Suites: bookworm-backports`, `Components: main`.
 * Returns null when no stanza matches.
 * @param stanzas parsed stanzas of a `.sources` file
 * @param codename the host's release codename (e.g. `bookworm`)
 */
export function backportsFromDeb822(stanzas: Stanza[], codename: string, suite: string = KERNEL_SUITE): string | null {
  for (const s of stanzas) {
    const types = (field(s, "Types") ?? "").split(/\s+/);
    const suites = (field(s, "Suites") ?? "").split(/\s+/);
    const uris = field(s, "URIs");
    if (!types.includes("deb") || !suites.includes(codename) || !uris) continue;
    if ((field(s, "Enabled") ?? "yes").toLowerCase() === "no") continue;
    const lines = ["Types: deb", `URIs: ${uris}`, `Suites: ${suite}`, "Components: main"];
    const signedBy = field(s, "Signed-By");
    if (signedBy) lines.push(`Signed-By: ${signedBy}`);
    return `${lines.join("\n")}\n`;
  }
  return null;
}

/**
 * From a one-line-style `sources.list`, build the backports line: the first
 * `deb [options] URI <codename> ...` line, with the suite replaced by
 * `bookworm-backports` and the components by `main`. Returns null when no
 * line matches.
 * @param text the file's contents
 * @param codename the host's release codename
 */
export function backportsFromOneLine(text: string, codename: string, suite: string = KERNEL_SUITE): string | null {
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    const m = /^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+/.exec(line);
    if (!m || m[3] !== codename) continue;
    return `deb ${m[1] ?? ""}${m[2]} ${suite} main\n`;
  }
  return null;
}

/** The host's release codename from /etc/os-release (`bookworm` when unknown). */
export function hostCodename(osRelease = "/etc/os-release"): string {
  try {
    const m = /^VERSION_CODENAME=["']?([^"'\n]+)/m.exec(readFileSync(osRelease, "utf8"));
    if (m) return m[1]!;
  } catch {
    // fall through
  }
  return "bookworm";
}

/** A derived private source: file name (`.sources` or `.list`) and contents. */
export interface DerivedSource {
  /** Name for the file in the private SourceParts directory. */
  fileName: string;
  /** The file's contents. */
  text: string;
  /** The system file it was derived from. */
  from: string;
}

/**
 * Find the host's main Debian archive in `/etc/apt/sources.list.d/debian.sources`,
 * then `/etc/apt/sources.list`, then any other file of `sources.list.d`, and
 * derive the backports source (or `suite`, e.g. `trixie` for the arm64
 * guest) from it. Returns null when nothing matches.
 * @param etcApt the apt configuration folder (tests pass a fixture folder)
 * @param codename the host's release codename
 * @param suite the suite to point at (default {@link KERNEL_SUITE})
 */
export function deriveBackportsSource(etcApt = "/etc/apt", codename = hostCodename(), suite: string = KERNEL_SUITE): DerivedSource | null {
  const base = suite === KERNEL_SUITE ? "bun-vfio-backports" : `bun-vfio-${suite}`;
  const partsDir = join(etcApt, "sources.list.d");
  const candidates = [join(partsDir, "debian.sources"), join(etcApt, "sources.list")];
  if (existsSync(partsDir)) {
    for (const f of readdirSync(partsDir).sort()) {
      if (f.endsWith(".sources") || f.endsWith(".list")) candidates.push(join(partsDir, f));
    }
  }
  for (const path of [...new Set(candidates)]) {
    if (!existsSync(path)) continue;
    const text = readFileSync(path, "utf8");
    if (path.endsWith(".sources")) {
      const out = backportsFromDeb822(parseDeb822(text), codename, suite);
      if (out) return { fileName: `${base}.sources`, text: out, from: path };
    } else {
      const out = backportsFromOneLine(text, codename, suite);
      if (out) return { fileName: `${base}.list`, text: out, from: path };
    }
  }
  return null;
}
