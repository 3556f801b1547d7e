/**
 * Host side of the nvme profile's suite (called by test/run.ts around the
 * guest run): before boot, write the read cases' patterns straight into the
 * disk image; after the guest exits, read the image and find each pattern
 * the guest's driver wrote at its LBA, and nothing where a rejected request
 * pointed. The image file is the ground truth: this reads it with node:fs,
 * not through anything the guest ran.
 */
import { closeSync, existsSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { BLOCK, DEMO_DONE_MARKER, DEMO_LBA, DEPTH_COUNT, demoPattern, DEPTH_LBA, IMAGE_NAME, READS, REJECTED, TAG_DEPTH, TAG_READ, TAG_WRITE, WRITES, WRITES_DONE_MARKER, rangePattern } from "./cases.ts";

/** One host-side check, counted as a test in the summary. */
export interface HostCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

/** Seeds the image in `scratchDir` with every read case's pattern and the queue-depth region. */
export function beforeBoot(scratchDir: string): void {
  const fd = openSync(join(scratchDir, IMAGE_NAME), "r+");
  try {
    for (const r of READS) writeSync(fd, rangePattern(TAG_READ, r.lba, r.blocks), 0, r.blocks * BLOCK, r.lba * BLOCK);
    writeSync(fd, rangePattern(TAG_DEPTH, DEPTH_LBA, DEPTH_COUNT), 0, DEPTH_COUNT * BLOCK, DEPTH_LBA * BLOCK);
  } finally {
    closeSync(fd);
  }
}

function readAt(fd: number, lba: number, blocks: number): Uint8Array {
  const b = new Uint8Array(blocks * BLOCK);
  const n = readSync(fd, b, 0, b.length, lba * BLOCK);
  if (n !== b.length) throw new Error(`short read of the image at LBA ${lba}: ${n} of ${b.length} bytes`);
  return b;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/**
 * Checks the image after the guest exited. In a filtered run (-t) only what
 * the guest suite reached is checked (its markers in `outDir`).
 */
export function afterExit(scratchDir: string, outDir: string, filtered: boolean): HostCheck[] {
  const ran = (marker: string) => !filtered || existsSync(join(outDir, marker));
  const checks: HostCheck[] = [];
  if (ran(DEMO_DONE_MARKER)) {
    const fd = openSync(join(scratchDir, IMAGE_NAME), "r");
    try {
      const demo = firstDifference(readAt(fd, DEMO_LBA, 8), demoPattern());
      checks.push({ name: `host image holds the bytes examples/nvme/demo.ts wrote at LBA ${DEMO_LBA}`, ok: demo < 0, detail: demo < 0 ? undefined : `first wrong byte at image offset ${DEMO_LBA * BLOCK + demo}` });
    } finally {
      closeSync(fd);
    }
  }
  if (!ran(WRITES_DONE_MARKER)) return checks;
  const fd = openSync(join(scratchDir, IMAGE_NAME), "r");
  try {
    for (const w of WRITES) {
      const got = readAt(fd, w.lba, w.blocks);
      const at = firstDifference(got, rangePattern(TAG_WRITE, w.lba, w.blocks));
      checks.push({ name: `host image holds ${w.name} at LBA ${w.lba}`, ok: at < 0, detail: at < 0 ? undefined : `first wrong byte at image offset ${w.lba * BLOCK + at}` });
    }
    for (const r of READS) {
      const at = firstDifference(readAt(fd, r.lba, r.blocks), rangePattern(TAG_READ, r.lba, r.blocks));
      checks.push({ name: `host image still holds seeded ${r.name} at LBA ${r.lba}`, ok: at < 0, detail: at < 0 ? undefined : `changed at image offset ${r.lba * BLOCK + at}` });
    }
    for (const [what, req] of Object.entries(REJECTED)) {
      const span = what === "outOfRange" ? 1 : req.blocks;
      const got = readAt(fd, req.lba, span);
      const nonzero = got.findIndex((b) => b !== 0);
      checks.push({ name: `host image is untouched where the rejected ${what} write pointed (LBA ${req.lba})`, ok: nonzero < 0, detail: nonzero < 0 ? undefined : `non-zero byte at image offset ${req.lba * BLOCK + nonzero}` });
    }
  } finally {
    closeSync(fd);
  }
  return checks;
}
