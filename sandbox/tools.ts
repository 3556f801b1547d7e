/**
 * Host tools the sandbox needs: QEMU and a static busybox (copied into the
 * guest's initramfs). Installs them with apt when that is possible.
 */
import { accessSync, closeSync, constants, existsSync, openSync, readSync, statSync } from "node:fs";
import { SandboxError, say } from "./log.ts";

/** Debian packages providing the host tools. */
export const HOST_PACKAGES = ["qemu-system-x86", "busybox-static"] as const;

/** Guest architectures and the QEMU binary and Debian package of each. */
export const QEMU_FOR = {
  x86_64: { binary: "qemu-system-x86_64", pkg: "qemu-system-x86" },
  arm64: { binary: "qemu-system-aarch64", pkg: "qemu-system-arm" },
} as const;

/** A guest architecture. */
export type GuestArch = keyof typeof QEMU_FOR;

/** Where Debian's busybox-static puts its binary. */
export const BUSYBOX_PATH = "/bin/busybox";

/** The command a person runs to install the host tools by hand. */
export const INSTALL_HINT = `sudo apt-get install -y --no-install-recommends ${HOST_PACKAGES.join(" ")}`;

/** Paths of the host tools, as found by {@link ensureHostTools}. */
export interface HostTools {
  /** The `qemu-system-x86_64` (or `-aarch64`) binary. */
  qemu: string;
  /** A statically linked busybox. */
  busybox: string;
}

/**
 * True when the ELF file at `path` has no program interpreter (PT_INTERP),
 * i.e. it is statically linked and can run inside an initramfs.
 * @param path an ELF64 little-endian executable
 */
export function isStaticElf(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(64);
    if (readSync(fd, head, 0, 64, 0) < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2) return false;
    const phoff = Number(head.readBigUInt64LE(0x20));
    const phentsize = head.readUInt16LE(0x36);
    const phnum = head.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      if (table.readUInt32LE(i * phentsize) === 3 /* PT_INTERP */) return false;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

function findTools(arch: GuestArch, qemuOverride?: string): { qemu: string | null; busybox: string | null } {
  const qemu = qemuOverride ?? Bun.which(QEMU_FOR[arch].binary);
  const busybox = existsSync(BUSYBOX_PATH) && isStaticElf(BUSYBOX_PATH) ? BUSYBOX_PATH : null;
  return { qemu, busybox };
}

/** True when this process may install Debian packages itself (root on a Debian system with apt-get). */
export function canAptInstall(): boolean {
  return process.getuid?.() === 0 && existsSync("/etc/debian_version") && Bun.which("apt-get") !== null;
}

/**
 * Make sure QEMU and a static busybox exist. When one is missing and this
 * process is root on Debian, runs `apt-get update` and
 * `apt-get install -y --no-install-recommends qemu-system-x86 busybox-static`
 * (busybox-static replaces a dynamic `busybox` package; `qemu-system-arm`
 * for arm64 guests). Otherwise throws a {@link SandboxError} naming the
 * exact install command. With `qemu` given (the sandbox's `--qemu`), PATH
 * is not searched for QEMU and its package is neither required nor installed.
 * @param arch the guest's architecture (default x86_64)
 * @param qemu a QEMU binary of the caller's own (must be an executable file)
 */
export async function ensureHostTools(arch: GuestArch = "x86_64", qemu?: string): Promise<HostTools> {
  if (qemu !== undefined) checkExecutable(qemu);
  let found = findTools(arch, qemu);
  if (found.qemu && found.busybox) return { qemu: found.qemu, busybox: found.busybox };
  const q = QEMU_FOR[arch];
  const packages = [...(found.qemu ? [] : [q.pkg]), "busybox-static"];
  const hint = `sudo apt-get install -y --no-install-recommends ${packages.join(" ")}`;
  const missing = [
    ...(found.qemu ? [] : [`${q.binary} (package ${q.pkg})`]),
    ...(found.busybox ? [] : [`a static ${BUSYBOX_PATH} (package busybox-static)`]),
  ].join(" and ");
  if (!canAptInstall()) {
    throw new SandboxError(`missing ${missing}. Install with:\n  ${hint}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  say(`missing ${missing}: running apt-get update`);
  await aptRun(["apt-get", "update"], env, hint);
  say(`installing ${packages.join(" ")} with apt-get (no recommends)`);
  await aptRun(["apt-get", "install", "-y", "--no-install-recommends", ...packages], env, hint);
  found = findTools(arch, qemu);
  if (!found.qemu || !found.busybox) {
    throw new SandboxError(`apt-get finished but ${missing} is still missing. Install by hand:\n  ${hint}`);
  }
  return { qemu: found.qemu, busybox: found.busybox };
}

/** A given QEMU must be an executable regular file; the error names the path. */
function checkExecutable(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new SandboxError(`--qemu ${path}: no such file`);
  }
  if (!st.isFile()) throw new SandboxError(`--qemu ${path}: not a regular file`);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new SandboxError(`--qemu ${path}: not executable (chmod +x it)`);
  }
}

/**
 * Install Debian packages with `apt-get update` and `apt-get install -y
 * --no-install-recommends` when this process may ({@link canAptInstall});
 * otherwise throw a {@link SandboxError} naming the install command.
 * @param packages Debian package names
 * @param why what is missing, for the messages ("the kernel build tools make, bison")
 */
export async function aptInstall(packages: readonly string[], why: string): Promise<void> {
  const hint = `sudo apt-get install -y --no-install-recommends ${packages.join(" ")}`;
  if (!canAptInstall()) throw new SandboxError(`missing ${why}. Install with:\n  ${hint}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  say(`missing ${why}: running apt-get update`);
  await aptRun(["apt-get", "update"], env, hint);
  say(`installing ${packages.join(" ")} with apt-get (no recommends)`);
  await aptRun(["apt-get", "install", "-y", "--no-install-recommends", ...packages], env, hint);
}

async function aptRun(argv: string[], env: Record<string, string | undefined>, hint: string): Promise<void> {
  const proc = Bun.spawn(argv, { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 15 * 60_000);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  if (code !== 0) {
    const tail = (out + err).trim().split("\n").slice(-10).join("\n");
    throw new SandboxError(`${argv.join(" ")} failed (status ${code}):\n${tail}\nInstall by hand:\n  ${hint}`);
  }
}

/**
 * Command line that decompresses an `.xz` file to stdout: the host's `xz`
 * when present, else busybox's `xz` applet.
 * @param busybox path of the static busybox, the fallback
 */
export function xzDecompressCommand(busybox: string): string[] {
  const xz = Bun.which("xz");
  return xz ? [xz, "-dc"] : [busybox, "xz", "-dc"];
}

