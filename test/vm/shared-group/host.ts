/**
 * Host side of the shared-group profile (called by test/run.ts around the
 * guest run): before boot, make an ext4 filesystem on the virtio-blk's image
 * with mkfs.ext4, holding one marker file, so the guest's in-use test can
 * mount a real disk and check it is the one it mounted.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EXT4_IMAGE, MARKER_FILE, MARKER_TEXT } from "./in-use-image.ts";

/** One host-side check, counted as a test in the summary. */
export interface HostCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

/** `mkfs.ext4 -d` on the scratch image: an ext4 filesystem with {@link MARKER_FILE} in its root. */
export function beforeBoot(scratchDir: string): void {
  const mkfs = Bun.which("mkfs.ext4") ?? ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"].find((p) => existsSync(p));
  if (!mkfs) throw new Error("mkfs.ext4 is missing on the host (Debian package e2fsprogs): the shared-group profile's in-use test needs an ext4 image");
  const content = mkdtempSync(join(scratchDir, "ext4-root-"));
  try {
    writeFileSync(join(content, MARKER_FILE), MARKER_TEXT);
    const p = Bun.spawnSync([mkfs, "-q", "-F", "-L", "bunvfio", "-d", content, join(scratchDir, EXT4_IMAGE)], { stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`mkfs.ext4 failed (status ${p.exitCode}): ${p.stderr.toString().trim()}`);
  } finally {
    rmSync(content, { recursive: true, force: true });
  }
}

/** Nothing to check on the host afterwards: the guest test asserts against the guest's own procfs and sysfs. */
export function afterExit(): HostCheck[] {
  return [];
}
