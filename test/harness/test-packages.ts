/**
 * Debian packages the guest tests need on the host (the x86 guest chroots
 * into the host's root, so what is installed here is visible there):
 * pciutils (lspci, the ground truth of the CLI tests) and pci.ids.
 * Installed with apt-get when running as root on Debian, like the sandbox's
 * own tools; otherwise the error names the command.
 */
import { existsSync } from "node:fs";
import { SandboxError, say } from "../../sandbox/log.ts";
import { canAptInstall } from "../../sandbox/tools.ts";

/** Packages and a file each must provide. */
export const TEST_PACKAGES: Record<string, string> = { pciutils: "/usr/bin/lspci", "pci.ids": "/usr/share/misc/pci.ids" };

function missing(): string[] {
  return Object.entries(TEST_PACKAGES).filter(([, file]) => !existsSync(file)).map(([pkg]) => pkg);
}

/** Makes sure every package in {@link TEST_PACKAGES} is installed; throws SandboxError with the install command when it cannot. */
export async function ensureTestPackages(): Promise<void> {
  const need = missing();
  if (need.length === 0) return;
  const hint = `sudo apt-get install -y --no-install-recommends ${need.join(" ")}`;
  if (!canAptInstall()) throw new SandboxError(`the guest tests need ${need.join(", ")} on the host. Install with:\n  ${hint}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  say(`installing ${need.join(" ")} for the guest tests (apt-get, no recommends)`);
  for (const argv of [["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", ...need]]) {
    const p = Bun.spawn(argv, { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new SandboxError(`${argv.join(" ")} failed (status ${code}):\n${(out + err).trim().split("\n").slice(-8).join("\n")}\nInstall by hand:\n  ${hint}`);
  }
  const still = missing();
  if (still.length) throw new SandboxError(`apt-get finished but ${still.join(", ")} is still missing. Install by hand:\n  ${hint}`);
}
