#!/usr/bin/env bun
/**
 * The `bun-vfio` command: list devices, check the host, bind/release them,
 * show what sysfs and VFIO report about a device and the mmap plan of its
 * BARs, and run scripts in the built-in sandbox guest.
 * Exit status: 0 ok, 1 failure (or `check`: not ready), 2 usage error.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { VfioError } from "../support/errors.ts";
import { sandboxCommand } from "../../sandbox/cli.ts";
import { UsageError } from "./args.ts";
import { bindCommand, releaseCommand } from "./bind.ts";
import { checkCommand } from "./check.ts";
import { infoCommand, planCommand } from "./info.ts";
import { listCommand } from "./list.ts";

const USAGE = `usage: bun-vfio <command> [options]

commands:
  list [-s SLOT] [-d IDS]      PCI devices like lspci -nn, with driver, IOMMU group and viability
  info [<bdf>...]              lspci -vv-style details, plus what VFIO reports and the mmap plans
  plan <bdf> [--bar N]         which pages of each BAR are mmapped or trapped, and why
  check [<bdf>]                is this host (and this device) ready for VFIO? findings with fixes
  bind <bdf>...                hand devices to vfio-pci (refuses devices in use; --dry-run)
  release <bdf>...             give devices back to their drivers (waits for holders, names them)
  sandbox [options] [-- cmd]   run a command in a QEMU guest with emulated devices on vfio-pci

options: --help (also after a command), --version; read commands take --json
exit status: 0 ok, 1 failure (check: not ready), 2 usage error

examples:
  bunx bun-vfio list -d 8086:
  bunx bun-vfio check 0000:01:00.0
  sudo bunx bun-vfio bind 0000:01:00.0 --dry-run
  bunx bun-vfio info 0000:01:00.0 --json
  bunx bun-vfio sandbox -- bun my-driver.ts

Run \`bun-vfio <command> --help\` for a command's options and examples.`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number> | number> = {
  list: listCommand,
  info: infoCommand,
  plan: planCommand,
  check: checkCommand,
  bind: bindCommand,
  release: releaseCommand,
  sandbox: sandboxCommand,
};

/** The package version from package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(import.meta.dir, "..", "..", "package.json"), "utf8")) as { version: string }).version;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-V") {
    console.log(`bun-vfio ${packageVersion()}`);
    return 0;
  }
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    if (name === undefined) console.error(USAGE);
    else console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`bun-vfio: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  if (name === "sandbox" && typeof Bun === "undefined") {
    // The sandbox drives QEMU through Bun.spawn/Bun.connect; the library commands run anywhere the Sys does.
    console.error("bun-vfio sandbox: needs Bun (it drives QEMU through Bun's process and socket APIs). Run `bunx bun-vfio sandbox ...`; inside the guest, `deno run -A` works.");
    return 2;
  }
  try {
    return await command(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`bun-vfio ${name}: ${err.message}`);
      return 2;
    }
    if (!(err instanceof VfioError)) throw err;
    console.error(`bun-vfio ${name}: ${err.message}`);
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
