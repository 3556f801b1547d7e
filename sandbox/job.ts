/**
 * The per-run files the host writes into the share for the guest's /init:
 * `ctl/job.sh` (devices to bind, working directory) and `ctl/cmd.sh` (the
 * command with its environment, run by the host's `/bin/sh` in the chroot).
 */
import { dirname, join } from "node:path";
import type { Profile } from "./profiles.ts";
import { checkVisible, commandPaths, tmpBinds } from "./guest-paths.ts";
import { PACKAGE_ROOT } from "./paths.ts";
import { GUEST_RESULTS_DIR } from "./protocol.ts";
import { isEnvName, shQuote } from "./shell.ts";

/** Inputs of {@link commandScript}. */
export interface CommandSpec {
  /** The profile (exported as `BUN_VFIO_PROFILE`). */
  profile: Profile;
  /** Program and arguments; a leading `bun` means the Bun running this code. */
  command: string[];
  /** Absolute working directory (same path as on the host). */
  cwd: string;
  /** Extra environment for the command. */
  env?: Record<string, string>;
  /** arm64 guests: the guest's own Bun (`/usr/local/bin/bun`), used for a leading `bun` and first in PATH. */
  guestBun?: string;
}

/** Where the arm64 guest's /init links its Bun. */
export const GUEST_BUN_PATH = "/usr/local/bin/bun";

/**
 * The host paths a command needs besides its working directory: the Bun
 * binary, this package, and the paths among its words.
 */
export function neededPaths(command: readonly string[], cwd: string): string[] {
  return [process.execPath, ...(Bun.which("bun") ? [Bun.which("bun")!] : []), PACKAGE_ROOT, ...commandPaths(command, cwd)];
}

/**
 * `ctl/job.sh`: shell variables read by /init: the vendor:device ids to
 * bind, the working directory, the results folder, and the /tmp folders to
 * bind from the host (`command` decides which; see guest-paths.ts), and on
 * arm64 the host path of the aarch64 Bun the guest links (`hostBun`).
 * @throws SandboxError when the command needs a path the guest cannot show
 */
export function jobScript(profile: Profile, cwd: string, command: readonly string[] = [], hostBun?: string): string {
  const bind = [...new Set(profile.devices.filter((d) => d.vfio).map((d) => `${d.vendor}:${d.device}`))];
  const needed = neededPaths(command, cwd);
  checkVisible(needed);
  return [
    `BIND=${shQuote(bind.join(" "))}`,
    `WORKDIR=${shQuote(cwd)}`,
    `TMPBINDS=${shQuote(tmpBinds(cwd, needed).join(" "))}`,
    `RESULTS=${shQuote(GUEST_RESULTS_DIR)}`,
    ...(hostBun ? [`GUEST_BUN=${shQuote(hostBun)}`] : []),
    "",
  ].join("\n");
}

/**
 * The environment of the guest command: PATH with the host's Bun folder and
 * the project's `node_modules/.bin`, HOME and TMPDIR on the guest's tmpfs,
 * `BUN_VFIO_PROFILE`, `BUN_VFIO_SANDBOX=1`, `BUN_VFIO_RESULTS`, `CI` and
 * colour settings passed through, then the profile's `guestEnv`, then the
 * caller's `env`.
 */
export function guestEnv(spec: CommandSpec): Record<string, string> {
  // The project's node_modules/.bin holds the host's Bun: on arm64 the guest's own comes first.
  const bunDirs = spec.guestBun ? [dirname(spec.guestBun)] : [dirname(process.execPath), ...(Bun.which("bun") ? [dirname(Bun.which("bun")!)] : [])];
  const path = [...new Set([...bunDirs, join(spec.cwd, "node_modules", ".bin"),
    "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])];
  const env: Record<string, string> = {
    PATH: path.join(":"),
    HOME: "/tmp",
    TMPDIR: "/tmp",
    LANG: "C.UTF-8",
    TERM: process.env.TERM && process.env.TERM !== "dumb" ? "linux" : "dumb",
    BUN_VFIO_PROFILE: spec.profile.name,
    BUN_VFIO_SANDBOX: "1",
    BUN_VFIO_RESULTS: GUEST_RESULTS_DIR,
  };
  for (const k of ["CI", "NO_COLOR", "FORCE_COLOR"]) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  if (!process.stdout.isTTY && env.FORCE_COLOR === undefined) env.NO_COLOR = "1";
  return { ...env, ...(spec.profile.guestEnv ?? {}), ...(spec.env ?? {}) };
}

/** `ctl/cmd.sh`: cd, export the environment, exec the command. */
export function commandScript(spec: CommandSpec): string {
  const env = guestEnv(spec);
  const exports = Object.entries(env)
    .filter(([k]) => isEnvName(k))
    .map(([k, v]) => `export ${k}=${shQuote(v)}`);
  const argv = spec.command.map((a, i) => (i === 0 && a === "bun" ? (spec.guestBun ?? process.execPath) : a));
  return [`cd ${shQuote(spec.cwd)} || exit 126`, ...exports, `exec ${argv.map(shQuote).join(" ")}`, ""].join("\n");
}
