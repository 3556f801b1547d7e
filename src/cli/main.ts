#!/usr/bin/env bun
/**
 * The `bun-vfio` command: list devices, bind/release them, show what VFIO
 * reports about a device and the mmap plan of its BARs, and run scripts in
 * the built-in sandbox guest.
 */
import { VfioError } from "../support/errors.ts";
import { sandboxCommand } from "../../sandbox/cli.ts";
import { bindCommand, releaseCommand } from "./bind.ts";
import { infoCommand, planCommand } from "./info.ts";
import { listCommand } from "./list.ts";

const USAGE = `usage: bun-vfio <command> [options]

commands:
  list                         PCI devices with names, driver and IOMMU group
  info <bdf> [--policy P]      what VFIO reports: regions, IRQs, capabilities, mmap plans
  plan <bdf> [--bar N] [--policy auto|strict|force]
                               explain which pages of each BAR are mmapped or trapped, and why
  bind <bdf>                   bind a device to vfio-pci (as root; unbinds its driver)
  release <bdf> [--driver D]   give a device back to its driver
  sandbox [--profile P] [-- <command...>]
                               run a command in a QEMU guest with emulated devices on vfio-pci
                               (default: bun examples/nvme-identify.ts)

Run \`bun-vfio <command> --help\` for a command's options.`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number> | number> = {
  list: listCommand,
  info: infoCommand,
  plan: planCommand,
  bind: bindCommand,
  release: releaseCommand,
  sandbox: sandboxCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(USAGE);
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
    if (!(err instanceof VfioError)) throw err;
    console.error(`bun-vfio ${name}: ${err.message}`);
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
