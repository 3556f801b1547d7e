/**
 * A minimal writer of the `newc` cpio format the kernel unpacks as an
 * initramfs (see the kernel's Documentation/driver-api/early-userspace/buffer-format.rst).
 */

/** File type bits of `st_mode`. */
export const S_IFDIR = 0o040000;
/** Regular file. */
export const S_IFREG = 0o100000;
/** Symbolic link. */
export const S_IFLNK = 0o120000;
/** Character device. */
export const S_IFCHR = 0o020000;

/** One archive entry. */
export interface CpioEntry {
  /** Path inside the archive, without a leading `/` (e.g. `bin/busybox`). */
  path: string;
  /** Full mode: type bits | permission bits. */
  mode: number;
  /** Contents (files) or target (symlinks); empty for directories and devices. */
  data?: Uint8Array | string;
  /** Device major number (character devices). */
  rdevMajor?: number;
  /** Device minor number (character devices). */
  rdevMinor?: number;
}

const enc = new TextEncoder();

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/**
 * Build a newc cpio archive from `entries` (in order; parents before
 * children), ending with the `TRAILER!!!` record. Owner is root, mtime 0.
 * @param entries files, directories, symlinks and device nodes
 * @returns the uncompressed archive
 */
export function buildCpio(entries: CpioEntry[]): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array): void => {
    parts.push(b);
    size += b.length;
  };
  const record = (e: CpioEntry, ino: number): void => {
    const data = typeof e.data === "string" ? enc.encode(e.data) : (e.data ?? new Uint8Array(0));
    const name = enc.encode(`${e.path}\0`);
    const isDir = (e.mode & 0o170000) === S_IFDIR;
    const header =
      "070701" +
      hex8(ino) + hex8(e.mode) + hex8(0) + hex8(0) + hex8(isDir ? 2 : 1) + hex8(0) +
      hex8(data.length) + hex8(0) + hex8(0) + hex8(e.rdevMajor ?? 0) + hex8(e.rdevMinor ?? 0) +
      hex8(name.length) + hex8(0);
    push(enc.encode(header));
    push(name);
    push(new Uint8Array(pad4(110 + name.length)));
    push(data);
    push(new Uint8Array(pad4(data.length)));
  };
  entries.forEach((e, i) => record(e, i + 1));
  record({ path: "TRAILER!!!", mode: 0 }, 0);
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
