/**
 * `bun-vfio sandbox`: run a command in a QEMU guest whose emulated PCI
 * devices are bound to vfio-pci.
 */
import { join } from "node:path";
import { SandboxError } from "./log.ts";
import { PACKAGE_ROOT } from "./paths.ts";
import { DEFAULT_PROFILE, PROFILES } from "./profiles.ts";
import { runInGuest } from "./runner.ts";

/** The command run when none is given. */
export const DEFAULT_SANDBOX_COMMAND = ["bun", join(PACKAGE_ROOT, "examples", "nvme-identify.ts")];

/** Help text of `bun-vfio sandbox`. */
export const SANDBOX_HELP = `Usage: bun-vfio sandbox [options] [--] [command...]

Boot a Linux guest in QEMU (TCG) with emulated PCI devices bound to vfio-pci
and run a command there, in this directory, with the host's Bun. The host's
/ is shared read-only; /tmp is a tmpfs; $BUN_VFIO_RESULTS is a writable
folder. Exits with the command's status (124: timeout, 125: guest failure).

Options:
  --profile NAME     guest profile (default ${DEFAULT_PROFILE}; see --list-profiles)
  --timeout SECONDS  time the command may run (default 1200)
  --list-profiles    print the profiles and exit
  --verbose          show kernel boot messages (or BUN_VFIO_SANDBOX_VERBOSE=1)
  -h, --help         this text

Default command: bun examples/nvme-identify.ts (from this package)

Environment:
  BUN_VFIO_CACHE     cache folder (default $XDG_CACHE_HOME/bun-vfio or ~/.cache/bun-vfio): kernel, initramfs, logs
  BUN_VFIO_KERNEL    use this vmlinuz instead of Debian's bookworm-backports kernel
  BUN_VFIO_MODULES   its /lib/modules/<version> folder
  BUN_VFIO_SANDBOX_VERBOSE=1  show the whole guest console

Needs qemu-system-x86_64 and a static /bin/busybox (installed with apt-get
when running as root on Debian).`;

function listProfiles(): string {
  const width = Math.max(...Object.keys(PROFILES).map((n) => n.length));
  return Object.values(PROFILES)
    .map((p) => `${p.name.padEnd(width)}  ${p.description}`)
    .join("\n");
}

/**
 * Run `bun-vfio sandbox` with the arguments that follow `sandbox`.
 * Parses `--profile NAME`, `--timeout SECONDS`, `--list-profiles`,
 * `--verbose`, `--help`; everything after `--` (or from the first
 * non-option) is the command. Returns the exit status for the process;
 * prints usage errors and {@link SandboxError}s itself.
 * @param argv arguments after the `sandbox` word
 */
export async function sandboxCommand(argv: string[]): Promise<number> {
  let profile = DEFAULT_PROFILE;
  let timeoutMs: number | undefined;
  let verbose: boolean | undefined;
  let command: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string | undefined => {
      const eq = a.indexOf("=");
      return eq >= 0 ? a.slice(eq + 1) : argv[++i];
    };
    if (a === "--") {
      command = argv.slice(i + 1);
      break;
    } else if (a === "-h" || a === "--help") {
      console.log(SANDBOX_HELP);
      return 0;
    } else if (a === "--list-profiles") {
      console.log(listProfiles());
      return 0;
    } else if (a === "--verbose") verbose = true;
    else if (a === "--profile" || a.startsWith("--profile=")) {
      const v = value();
      if (!v || !PROFILES[v]) return usage(`unknown profile "${v ?? ""}"; known: ${Object.keys(PROFILES).join(", ")}`);
      profile = v;
    } else if (a === "--timeout" || a.startsWith("--timeout=")) {
      const v = Number(value());
      if (!Number.isFinite(v) || v <= 0) return usage("--timeout needs a positive number of seconds");
      timeoutMs = v * 1000;
    } else if (a.startsWith("-")) return usage(`unknown option ${a}`);
    else {
      command = argv.slice(i);
      break;
    }
  }
  if (command.length === 0) command = DEFAULT_SANDBOX_COMMAND;
  try {
    return await runInGuest({ profile, command, timeoutMs, verbose });
  } catch (e) {
    if (e instanceof SandboxError) {
      console.error(`bun-vfio sandbox: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

function usage(message: string): number {
  console.error(`bun-vfio sandbox: ${message}\n\n${SANDBOX_HELP}`);
  return 2;
}
