/**
 * Which host folders a guest command needs that the guest would not see.
 * The guest shares the host's `/` read-only, but its /tmp is a fresh tmpfs
 * and /proc, /sys, /dev are its own: a Bun binary, a package or a script
 * under /tmp must be bound in explicitly, and anything under /proc, /sys,
 * /dev cannot be shown at all (that is an error naming the path).
 */
import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { SandboxError } from "./log.ts";
import { GUEST_RESULTS_DIR } from "./protocol.ts";

/** The /tmp folders to bind into the guest: `cwd` itself when under /tmp, plus the top-level /tmp folder of every other needed path there. */
export function tmpBinds(cwd: string, needed: readonly string[]): string[] {
  const out = new Set<string>();
  if (cwd.startsWith("/tmp/")) out.add(cwd);
  for (const p of needed) {
    if (!p.startsWith("/tmp/")) continue;
    // The guest's own results folder (e.g. --reporter-outfile=$BUN_VFIO_RESULTS/x), not a host path.
    if (p === GUEST_RESULTS_DIR || p.startsWith(`${GUEST_RESULTS_DIR}/`)) continue;
    const top = `/tmp/${p.slice(5).split("/")[0]}`;
    if (cwd === top || cwd.startsWith(`${top}/`)) {
      if (p === cwd || p.startsWith(`${cwd}/`)) continue;
    }
    out.add(top);
  }
  for (const p of out) if (/\s/.test(p)) throw new SandboxError(`${p} contains white space, which the guest's /init cannot bind: rename it or move it out of /tmp`);
  return [...out].sort((a, b) => a.length - b.length);
}

/** Absolute paths among the command's words that exist on the host (relative ones resolved against `cwd`). */
export function commandPaths(command: readonly string[], cwd: string): string[] {
  const out: string[] = [];
  for (const word of command) {
    const candidates = word.startsWith("--") && word.includes("=") ? [word.slice(word.indexOf("=") + 1)] : [word];
    for (const c of candidates) {
      if (c === "" || c.startsWith("-")) continue;
      const abs = isAbsolute(c) ? c : resolve(cwd, c);
      if ((isAbsolute(c) || c.includes("/")) && existsSync(abs)) out.push(abs);
    }
  }
  return out;
}

/** Throws a SandboxError naming the first needed path the guest covers with its own /proc, /sys or /dev. */
export function checkVisible(needed: readonly string[]): void {
  for (const p of needed) {
    if (/^\/(proc|sys|dev)(\/|$)/.test(p)) throw new SandboxError(`${p} is not visible in the guest: it has its own /proc, /sys and /dev. Copy what the command needs elsewhere.`);
  }
}
