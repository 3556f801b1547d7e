/**
 * Read the kernel release out of an x86 bzImage's setup header.
 */
import { closeSync, openSync, readSync } from "node:fs";

/**
 * The kernel release recorded in a bzImage header (the first word of the
 * string that `kernel_version`, at offset 0x20e, points to), or null when
 * the file is not a bzImage.
 * @param vmlinuz path of the kernel image
 */
export function bzImageVersion(vmlinuz: string): string | null {
  try {
    const head = Buffer.alloc(64 * 1024);
    const fd = openSync(vmlinuz, "r");
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    if (head.toString("latin1", 0x202, 0x206) !== "HdrS") return null;
    const ptr = head.readUInt16LE(0x20e) + 0x200;
    const end = head.indexOf(0, ptr);
    return head.toString("latin1", ptr, end < 0 ? ptr + 128 : end).split(" ")[0] || null;
  } catch {
    return null;
  }
}
