/**
 * `bun-vfio sandbox`: run a command in a QEMU guest whose emulated PCI
 * devices are bound to vfio-pci; your own device models with `--device`
 * and `--bind`, or a profile file.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { composeProfile, profileJson, resolveProfile } from "./custom-profile.ts";
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
/ is shared read-only; /tmp is a tmpfs, except the folders under /tmp the
command needs (this directory, Bun, this package, paths among its words),
which are bound in; $BUN_VFIO_RESULTS is a writable folder. Exits with the
command's status (124: timeout, 125: guest failure, 2: usage error).

Options:
  --profile NAME|FILE.json  guest profile (default ${DEFAULT_PROFILE}; see --list-profiles), or a profile file
  --device ARGS      add a QEMU device: the text after -device (repeatable)
  --drive ARGS       add a QEMU -drive (repeatable), e.g. for --device nvme,drive=...
  --object ARGS      add a QEMU -object (repeatable), e.g. memory-backend-ram,id=m0,size=1M
  --bind VENDOR:DEV  bind the guest's devices with these ids to vfio-pci (repeatable)
  --bare             leave out the profile's own devices (keep its IOMMU setup)
  --qemu PATH        use this QEMU (your own build; qemu-system-aarch64 for arm64 profiles); none needed on PATH
  --write-profile FILE.json  save the resulting profile for reuse with --profile FILE.json
  --timeout SECONDS  time the command may run (default 1200)
  --list-profiles    print the profiles and exit
  --verbose          show kernel boot messages (or BUN_VFIO_SANDBOX_VERBOSE=1)
  -h, --help         this text

Default command: bun examples/nvme-identify.ts (from this package)

Examples:
  bun-vfio sandbox
  bun-vfio sandbox --profile no-remap -- bun test ./my-tests
  bun-vfio sandbox --bare --device pci-testdev --bind 1b36:0005 -- bun my-script.ts
  bun-vfio sandbox --object memory-backend-ram,id=m0,size=1M --device ivshmem-plain,memdev=m0 \\
      --bind 1af4:1110 --write-profile ivshmem.json -- bun shm.ts
  bun-vfio sandbox --profile ivshmem.json -- bun shm.ts

Environment:
  BUN_VFIO_CACHE     cache folder (default $XDG_CACHE_HOME/bun-vfio or ~/.cache/bun-vfio): kernel, initramfs, logs
  BUN_VFIO_KERNEL    x86 kernel: a bzImage path; "built": the sandbox's own build (built once, ~4 min);
                     "debian": Debian's bookworm-backports linux-image (no iommufd, no no-IOMMU);
                     unset: the own build when cached (always for iommufd/noiommu), else Debian's
  BUN_VFIO_MODULES   its /lib/modules/<version> folder (leave unset for a kernel with all built in)
  BUN_VFIO_SANDBOX_VERBOSE=1  show the whole guest console

Needs qemu-system-x86_64 (qemu-system-aarch64 for arm64 profiles; none with
--qemu) and a static /bin/busybox (installed with apt-get when running as
root on Debian). The first x86 run builds the guest kernel from Debian's
linux-source-6.12 (about 5-10 min on 2 cores, then cached in the cache
folder).`;

const OPTIONS = {
  profile: { type: "string" },
  device: { type: "string", multiple: true },
  drive: { type: "string", multiple: true },
  object: { type: "string", multiple: true },
  bind: { type: "string", multiple: true },
  bare: { type: "boolean" },
  qemu: { type: "string" },
  "write-profile": { type: "string" },
  timeout: { type: "string" },
  "list-profiles": { type: "boolean" },
  verbose: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function listProfiles(): string {
  const width = Math.max(...Object.keys(PROFILES).map((n) => n.length));
  return Object.values(PROFILES)
    .map((p) => `${p.name.padEnd(width)}  ${p.description}`)
    .join("\n");
}

/**
 * Splits argv into the sandbox's options and the command: the command
 * starts after `--` or at the first word that is neither an option nor an
 * option's value.
 */
export function splitCommand(argv: string[]): { options: string[]; command: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") return { options: argv.slice(0, i), command: argv.slice(i + 1) };
    if (!a.startsWith("-")) return { options: argv.slice(0, i), command: argv.slice(i) };
    const name = a.replace(/^--?/, "").split("=")[0]!;
    const spec = (OPTIONS as Record<string, { type: string }>)[name];
    if (spec?.type === "string" && !a.includes("=")) i++;
  }
  return { options: argv, command: [] };
}

/**
 * Run `bun-vfio sandbox` with the arguments that follow `sandbox`
 * (node:util parseArgs for the options; see {@link SANDBOX_HELP}). Returns
 * the exit status for the process: the command's, 2 for a usage error, 1
 * when the guest cannot be prepared; prints errors itself.
 * @param argv arguments after the `sandbox` word
 */
export async function sandboxCommand(argv: string[]): Promise<number> {
  const { options, command: given } = splitCommand(argv);
  let values;
  try {
    ({ values } = parseArgs({ args: options, options: OPTIONS, allowPositionals: false, strict: true }));
  } catch (e) {
    return usage((e as Error).message);
  }
  if (values.help) {
    console.log(SANDBOX_HELP);
    return 0;
  }
  if (values["list-profiles"]) {
    console.log(listProfiles());
    return 0;
  }
  let timeoutMs: number | undefined;
  if (values.timeout !== undefined) {
    const v = Number(values.timeout);
    if (!Number.isFinite(v) || v <= 0) return usage("--timeout needs a positive number of seconds");
    timeoutMs = v * 1000;
  }
  try {
    const base = resolveProfile(values.profile ?? DEFAULT_PROFILE);
    const profile = composeProfile(base, {
      devices: values.device ?? [],
      drives: values.drive ?? [],
      objects: values.object ?? [],
      bind: values.bind ?? [],
      bare: values.bare === true,
    });
    if (values["write-profile"]) writeFileSync(values["write-profile"], profileJson(profile));
    const command = given.length ? given : DEFAULT_SANDBOX_COMMAND;
    return await runInGuest({ profile, command, timeoutMs, verbose: values.verbose, ...(values.qemu ? { qemu: values.qemu } : {}) });
  } catch (e) {
    if (e instanceof SandboxError) {
      const usageLike = /^(unknown profile|--bind |--qemu |profile file )/.test(e.message);
      console.error(`bun-vfio sandbox: ${e.message}`);
      return usageLike ? 2 : 1;
    }
    throw e;
  }
}

function usage(message: string): number {
  console.error(`bun-vfio sandbox: ${message}\n\n${SANDBOX_HELP}`);
  return 2;
}
