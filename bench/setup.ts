/**
 * What the benchmarks need beyond the sandbox: fio (Debian package `fio`),
 * which the guest runs from the host's file system against the kernel's
 * nvme driver. Installed with apt-get when this process may; otherwise an
 * error naming the command.
 */
import { canAptInstall } from "../sandbox/tools.ts";

const INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "fio"];

function run(argv: string[]): void {
  const p = Bun.spawnSync(argv, { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, stdout: "pipe", stderr: "pipe", timeout: 15 * 60_000 });
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")} failed: ${(p.stdout.toString() + p.stderr.toString()).trim().split("\n").slice(-5).join("\n")}`);
}

/** Makes sure `fio` is on PATH, installing the Debian package when possible. */
export async function ensureFio(): Promise<string> {
  const found = Bun.which("fio");
  if (found) return found;
  if (!canAptInstall()) throw new Error(`the NVMe benchmark against the kernel driver needs fio: sudo ${INSTALL.join(" ")}`);
  process.stderr.write("bench: installing fio with apt-get (no recommends)\n");
  try {
    run(INSTALL);
  } catch {
    run(["apt-get", "update"]);
    run(INSTALL);
  }
  const now = Bun.which("fio");
  if (!now) throw new Error(`apt-get finished but fio is still missing: ${INSTALL.join(" ")}`);
  return now;
}
