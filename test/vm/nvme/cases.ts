/**
 * The data-integrity cases shared by the host side (test/vm/nvme/host.ts,
 * which seeds and checks the disk image) and the guest suite. Pure data and
 * a pure pattern generator: the expected bytes at an LBA depend only on the
 * case's tag and the LBA, never on the driver.
 */

/** The image the profile gives the controller (sandbox/profiles.ts, profile "nvme"). */
export const IMAGE_NAME = "nvme-io.img";
export const IMAGE_BYTES = 64 * 1024 * 1024;
/** From the profile's QEMU arguments: logical_block_size=512, mdts=7 with 4 KiB CAP.MPSMIN. */
export const BLOCK = 512;
export const MDTS_BYTES = 4096 * 2 ** 7;
export const MDTS_BLOCKS = MDTS_BYTES / BLOCK;
export const BLOCKS = IMAGE_BYTES / BLOCK;
export const SERIAL = "bunvfioio";

/** One transfer: where, how many blocks, which completion mode, where in the DMA buffer. */
export interface Transfer {
  name: string;
  lba: number;
  blocks: number;
  mode: "interrupt" | "polled";
  /** Byte offset of the data in the DMA buffer (non-zero: PRP1 has an in-page offset). */
  offset: number;
}

const shapes: Omit<Transfer, "lba" | "name">[] = [
  { blocks: 1, mode: "interrupt", offset: 0 },            // PRP1 only
  { blocks: 8, mode: "polled", offset: 0 },               // exactly one page
  { blocks: 9, mode: "interrupt", offset: 0 },            // PRP2 is the second data page
  { blocks: 24, mode: "polled", offset: 0 },              // three pages: PRP list
  { blocks: 1, mode: "polled", offset: 4092 },            // 512 bytes across a page boundary: PRP1 + PRP2
  { blocks: 100, mode: "interrupt", offset: 1024 },       // in-page offset with a PRP list
  { blocks: MDTS_BLOCKS, mode: "interrupt", offset: 0 },  // MDTS
  { blocks: MDTS_BLOCKS, mode: "polled", offset: 512 },   // MDTS from an unaligned start: 129 pages
];

function at(base: number, tag: string): Transfer[] {
  let lba = base;
  return shapes.map((s, i) => {
    const t = { ...s, lba, name: `${tag}${i} ${s.blocks} block(s) ${s.mode} +${s.offset}` };
    lba += s.blocks + 37;
    return t;
  });
}

/** Seeded by the host before boot, read and compared by the guest. */
export const READS: Transfer[] = [...at(1000, "read"), { name: "read-last last block polled", lba: BLOCKS - 1, blocks: 1, mode: "polled", offset: 0 }];
/** Written by the guest, found by the host after the guest exits. */
export const WRITES: Transfer[] = [...at(40000, "write"), { name: "write-last last block interrupt", lba: BLOCKS - 1 - 1, blocks: 1, mode: "interrupt", offset: 8 }];
/** Seeded region for the queue-depth tests: one distinct block per command. */
export const DEPTH_LBA = 20000;
export const DEPTH_COUNT = 300;

/** Where examples/nvme/demo.ts writes its 8 blocks (byte i of the 4 KiB is (7i + 3) & 0xff). */
export const DEMO_LBA = 100000;
export function demoPattern(): Uint8Array {
  return Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff);
}

/** Requests the driver must refuse before the device sees them; the host checks their LBAs stay zero. */
export const REJECTED = {
  outOfRange: { lba: BLOCKS - 3, blocks: 4, offset: 0 }, // ends one block past the end; only its first LBA is free of other cases
  overMdts: { lba: 80000, blocks: MDTS_BLOCKS + 1, offset: 0 },
  misaligned: { lba: 90000, blocks: 8, offset: 2 },
} as const;

/** Tags mixed into the patterns so a read case can never match a write case. */
export const TAG_READ = 0x52454144;   // "READ"
export const TAG_WRITE = 0x57524954;  // "WRIT"
export const TAG_DEPTH = 0x44455054;  // "DEPT"

/**
 * The 512 bytes expected at `lba` under `tag`: a 16-byte header
 * ("BVFN", tag, LBA as u64 little-endian), then an xorshift32 stream seeded
 * from both, so a block at a wrong offset or from another case never matches.
 */
export function blockPattern(tag: number, lba: number): Uint8Array {
  const b = new Uint8Array(BLOCK);
  const v = new DataView(b.buffer);
  b.set([0x42, 0x56, 0x46, 0x4e]);
  v.setUint32(4, tag, true);
  v.setBigUint64(8, BigInt(lba), true);
  let x = (tag ^ Math.imul(lba + 1, 0x9e3779b1)) >>> 0 || 1;
  for (let i = 16; i < BLOCK; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    v.setUint32(i, x, true);
  }
  return b;
}

/** The bytes of `blocks` consecutive patterned blocks from `lba`. */
export function rangePattern(tag: number, lba: number, blocks: number): Uint8Array {
  const out = new Uint8Array(blocks * BLOCK);
  for (let i = 0; i < blocks; i++) out.set(blockPattern(tag, lba + i), i * BLOCK);
  return out;
}

/** A marker the guest suite leaves in $BUN_VFIO_RESULTS once its write tests ran, so a filtered run (-t) skips the host checks. */
export const WRITES_DONE_MARKER = "nvme-writes-ran";
/** Left by the demo test, so a filtered run checks the demo's bytes only when it ran. */
export const DEMO_DONE_MARKER = "nvme-demo-ran";
