/**
 * The IOVA allocator and the scatter-list helper: pure code, no VFIO.
 * Ranges are written the way the kernel reports them (inclusive ends);
 * the x86 layout below is what intel-iommu reports with its MSI window.
 */
import { describe, expect, test } from "bun:test";
import { VfioError } from "../../src/support/errors.ts";
import { DEFAULT_IOVA_RANGES, IovaAllocator } from "../../src/iommu/iova-allocator.ts";
import { dmaSegments } from "../../src/iommu/segments.ts";
import { vfioError } from "../vfio-error.ts";

const K4 = 0x1000n;
const M2 = 0x200000n;
const X86_RANGES = [{ start: 0n, end: 0xfedfffffn }, { start: 0xfef00000n, end: (1n << 39n) - 1n }];

describe("construction", () => {
  test("granule is the smallest page size; ranges are clipped to it", () => {
    const a = new IovaAllocator({ pageSizes: 0x40201000n, ranges: [{ start: 0x800n, end: 0x10fffn }, { start: 0x20000n, end: 0x20ffen }] });
    expect(a.granule).toBe(K4);
    // the second range holds no whole granule and disappears
    expect(a.ranges).toEqual([{ start: 0x1000n, end: 0x10fffn }]);
    expect(a.freeBlocks()).toEqual([{ iova: 0x1000n, size: 0x10000n }]);
  });

  test("no ranges: [0, 2^48), 4 KiB granule", () => {
    const a = new IovaAllocator();
    expect(a.ranges).toEqual([...DEFAULT_IOVA_RANGES]);
    expect(a.granule).toBe(K4);
  });

  test("64 KiB IOMMU pages make 64 KiB the unit", () => {
    const a = new IovaAllocator({ pageSizes: 0x10000n | 0x20000000n });
    expect(a.allocate(1)).toBe(0n);
    expect(a.allocate(1)).toBe(0x10000n);
    expect(a.sizeOf(0x10000n)).toBe(0x10000n);
  });

  test("an empty page-size bitmap is refused", () => {
    expect(vfioError(() => new IovaAllocator({ pageSizes: 0n })).code).toBe("EINVAL");
  });
});

describe("allocate and free", () => {
  test("sizes round up to the granule; allocations are disjoint and inside the ranges", () => {
    const a = new IovaAllocator({ ranges: X86_RANGES });
    const x = a.allocate(1);
    const y = a.allocate(0x1001);
    expect([x, y]).toEqual([0n, 0x1000n]);
    expect(a.allocations()).toEqual([{ iova: 0n, size: K4 }, { iova: 0x1000n, size: 0x2000n }]);
    expect(a.free(y)).toBe(0x2000n);
    expect(a.free(x)).toBe(K4);
    expect(a.freeBlocks()).toEqual([{ iova: 0n, size: 0xfee00000n }, { iova: 0xfef00000n, size: (1n << 39n) - 0xfef00000n }]);
  });

  test("alignment: the block starts on the requested power of two", () => {
    const a = new IovaAllocator();
    a.allocate(K4);
    expect(a.allocate(K4, { align: M2 })).toBe(M2);
    // a smaller alignment than the granule is the granule
    expect(a.allocate(K4, { align: 16 })).toBe(0x1000n);
    expect(vfioError(() => a.allocate(K4, { align: 0x3000n })).code).toBe("EINVAL");
  });

  test("best fit: a freed hole that fits is reused before the big free span", () => {
    const a = new IovaAllocator();
    const blocks = [a.allocate(0x4000), a.allocate(0x1000), a.allocate(0x2000), a.allocate(0x1000)];
    expect(blocks).toEqual([0n, 0x4000n, 0x5000n, 0x7000n]);
    a.free(0n); // hole of 0x4000 at 0
    a.free(0x5000n); // hole of 0x2000 at 0x5000
    expect(a.allocate(0x2000)).toBe(0x5000n); // the exact-size hole, not the first one
    expect(a.allocate(0x1000)).toBe(0n); // the smallest hole left
    expect(a.allocate(0x4000)).toBe(0x8000n); // the 0x3000 left at 0x1000 is too small
  });

  test("freeing coalesces with both neighbours", () => {
    const a = new IovaAllocator({ ranges: [{ start: 0n, end: 0xffffn }] });
    const [p, q, r] = [a.allocate(K4), a.allocate(K4), a.allocate(K4)];
    a.free(p);
    a.free(r);
    expect(a.freeBlocks().length).toBe(2);
    a.free(q);
    expect(a.freeBlocks()).toEqual([{ iova: 0n, size: 0x10000n }]);
  });

  test("free of an unknown IOVA, or twice, is an EINVAL", () => {
    const a = new IovaAllocator();
    const x = a.allocate(K4);
    expect(vfioError(() => a.free(x + 0x1000n)).code).toBe("EINVAL");
    a.free(x);
    const err = vfioError(() => a.free(x));
    expect(err.code).toBe("EINVAL");
    expect(err.hint).toContain("once");
  });

  test("bad sizes are EINVAL", () => {
    const a = new IovaAllocator();
    expect(vfioError(() => a.allocate(0)).code).toBe("EINVAL");
    expect(vfioError(() => a.allocate(-4096)).code).toBe("EINVAL");
    expect(vfioError(() => a.allocate(1.5)).code).toBe("EINVAL");
  });
});

describe("limit", () => {
  test("every block ends at or below the limit (a 28-bit device)", () => {
    const a = new IovaAllocator({ ranges: X86_RANGES });
    a.reserve(0n, 0x0ff00000n);
    const x = a.allocate(0x80000, { limit: 1n << 28n });
    expect(x).toBe(0x0ff00000n);
    expect(x + 0x80000n).toBeLessThanOrEqual(1n << 28n);
    // 0x80000 left below the limit: a 1 MiB request must not spill over it
    const err = vfioError(() => a.allocate(0x100000, { limit: 1n << 28n }));
    expect(err.code).toBe("ENOSPC");
    expect(err.message).toContain("below 0x10000000");
    expect(err.message).toContain("the largest free block below 0x10000000 is 0x80000 bytes at 0xff80000");
    // without the limit it is served from the same span, across 2^28
    expect(a.allocate(0x100000)).toBe(0x0ff80000n);
  });

  test("a block whose aligned start fits but whose end passes the limit is refused", () => {
    const a = new IovaAllocator({ ranges: [{ start: 0n, end: 0xfffffn }] });
    a.reserve(0n, 0x3000);
    expect(vfioError(() => a.allocate(0x2000, { limit: 0x4000 })).code).toBe("ENOSPC");
    expect(a.allocate(0x1000, { limit: 0x4000 })).toBe(0x3000n);
  });

  test("exhaustion names 'nothing is free' when the space under the limit is all taken", () => {
    const a = new IovaAllocator({ ranges: [{ start: 0n, end: 0xffffn }] });
    a.allocate(0x10000);
    const err = vfioError(() => a.allocate(1));
    expect(err.code).toBe("ENOSPC");
    expect(err.errno).toBe(28);
    expect(err.message).toContain("nothing is free");
    expect(err.hint).toMatch(/Free buffers/);
  });

  test("a non-positive limit is EINVAL", () => {
    expect(vfioError(() => new IovaAllocator().allocate(1, { limit: 0 })).code).toBe("EINVAL");
  });
});

describe("reserve (fixed IOVAs)", () => {
  test("takes exactly the block asked for; allocate() works around it", () => {
    const a = new IovaAllocator({ ranges: [{ start: 0n, end: 0xffffn }] });
    expect(a.reserve(0x2000n, 0x1800)).toBe(0x2000n); // rounded to the granule
    expect(a.allocate(0x2000)).toBe(0n);
    expect(a.allocate(0x1000)).toBe(0x4000n);
    expect(a.allocations().map((b) => b.iova)).toEqual([0n, 0x2000n, 0x4000n]);
  });

  test("overlap with a reserved or allocated block is EEXIST naming that block", () => {
    const a = new IovaAllocator();
    a.reserve(0x10000n, 0x4000);
    const err = vfioError(() => a.reserve(0x13000n, 0x2000));
    expect(err.code).toBe("EEXIST");
    expect(err.errno).toBe(17);
    expect(err.message).toContain("[0x10000, 0x14000)");
    const x = a.allocate(K4);
    expect(vfioError(() => a.reserve(x, K4)).code).toBe("EEXIST");
    // adjacent is fine
    a.reserve(0x14000n, K4);
  });

  test("outside the usable ranges (the MSI window) or unaligned is EINVAL", () => {
    const a = new IovaAllocator({ ranges: X86_RANGES });
    const msi = vfioError(() => a.reserve(0xfee00000n, K4));
    expect(msi.code).toBe("EINVAL");
    expect(msi.message).toContain("not inside the usable IOVA ranges");
    expect(vfioError(() => a.reserve(0xfedff000n, 0x2000)).code).toBe("EINVAL"); // straddles the window's start
    expect(vfioError(() => a.reserve(0x1234n, K4)).code).toBe("EINVAL");
    expect(a.reserve(0xfedff000n, K4)).toBe(K4); // the last page below the window is usable
  });
});

describe("restrictTo", () => {
  test("drops free space outside the new ranges; blocks in use stay; freeing them returns only what is usable", () => {
    const a = new IovaAllocator({ ranges: [{ start: 0n, end: 0xffffn }] });
    const x = a.allocate(0x4000); // 0..0x4000
    a.restrictTo([{ start: 0x2000n, end: 0xbfffn }]);
    expect(a.freeBlocks()).toEqual([{ iova: 0x4000n, size: 0x8000n }]);
    a.free(x);
    expect(a.freeBlocks()).toEqual([{ iova: 0x2000n, size: 0xa000n }]);
  });
});

/** A deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("property: random allocate/reserve/free against a page bitmap model", () => {
  for (const seed of [1, 2, 3, 42, 2024]) {
    test(`seed ${seed}`, () => {
      const pages = 256;
      const random = rng(seed);
      // two ranges with a hole, like the MSI window
      const a = new IovaAllocator({ ranges: [{ start: 0n, end: 0x7ffffn }, { start: 0xa0000n, end: BigInt(pages * 0x1000 - 1) }] });
      const usable = (p: number) => p < 0x80 || p >= 0xa0;
      const taken = new Set<number>();
      const live: bigint[] = [];
      for (let step = 0; step < 2000; step++) {
        const r = random();
        if (r < 0.45) {
          const n = 1 + Math.floor(random() * 8);
          const align = 1n << BigInt(12 + Math.floor(random() * 4));
          const limit = random() < 0.3 ? BigInt(Math.floor(random() * pages) + 1) * 0x1000n : undefined;
          try {
            const iova = a.allocate(n * 0x1000, { align, limit });
            const p = Number(iova / 0x1000n);
            expect(iova % align).toBe(0n);
            if (limit !== undefined) expect(iova + BigInt(n * 0x1000)).toBeLessThanOrEqual(limit);
            for (let i = p; i < p + n; i++) {
              expect(usable(i) && !taken.has(i)).toBe(true);
              taken.add(i);
            }
            live.push(iova);
          } catch (err) {
            expect((err as VfioError).code).toBe("ENOSPC");
            // the model agrees that no aligned run of n free pages fits under the limit
            const top = limit === undefined ? pages : Number(limit / 0x1000n);
            const step = Number(align / 0x1000n);
            for (let p = 0; p + n <= top; p += step) {
              let ok = true;
              for (let i = p; i < p + n && ok; i++) ok = usable(i) && !taken.has(i);
              expect(ok).toBe(false);
            }
          }
        } else if (r < 0.55) {
          const p = Math.floor(random() * pages);
          const n = 1 + Math.floor(random() * 4);
          let free = p + n <= pages;
          let overlap = false;
          for (let i = p; i < p + n && i < pages; i++) {
            if (taken.has(i)) overlap = true;
            if (!usable(i)) free = false;
          }
          try {
            a.reserve(BigInt(p * 0x1000), n * 0x1000);
            expect(free && !overlap).toBe(true);
            for (let i = p; i < p + n; i++) taken.add(i);
            live.push(BigInt(p * 0x1000));
          } catch (err) {
            // overlap with a block in use wins over "outside the ranges"
            expect((err as VfioError).code).toBe(overlap ? "EEXIST" : "EINVAL");
          }
        } else if (live.length > 0) {
          const iova = live.splice(Math.floor(random() * live.length), 1)[0]!;
          const size = a.free(iova);
          for (let i = Number(iova / 0x1000n); i < Number((iova + size) / 0x1000n); i++) taken.delete(i);
        }
        // free blocks are sorted, disjoint, never adjacent (coalesced), and exactly the untaken usable pages
        const blocks = a.freeBlocks();
        let freePages = 0;
        for (let i = 0; i < blocks.length; i++) {
          if (i > 0) expect(blocks[i]!.iova).toBeGreaterThan(blocks[i - 1]!.iova + blocks[i - 1]!.size);
          freePages += Number(blocks[i]!.size / 0x1000n);
        }
        let modelFree = 0;
        for (let i = 0; i < pages; i++) if (usable(i) && !taken.has(i)) modelFree++;
        expect(freePages).toBe(modelFree);
      }
    });
  }
});

describe("dmaSegments", () => {
  test("cuts a buffer into chunks of at most maxSegment", () => {
    expect(dmaSegments(0x10000n, 0x5000, 0x2000)).toEqual([
      { iova: 0x10000n, length: 0x2000 },
      { iova: 0x12000n, length: 0x2000 },
      { iova: 0x14000n, length: 0x1000 },
    ]);
    expect(dmaSegments(0x10000n, 0, 0x1000)).toEqual([]);
  });

  test("a boundary starts a new segment at every multiple (NVMe PRP style)", () => {
    expect(dmaSegments(0x10f00n, 0x1200, 0x10000, { boundary: 0x1000 })).toEqual([
      { iova: 0x10f00n, length: 0x100 },
      { iova: 0x11000n, length: 0x1000 },
      { iova: 0x12000n, length: 0x100 },
    ]);
    const segs = dmaSegments(0x3000n, 0x100000, 0x20000, { boundary: 0x10000 });
    expect(segs[0]).toEqual({ iova: 0x3000n, length: 0xd000 });
    expect(segs.reduce((n, s) => n + s.length, 0)).toBe(0x100000);
    for (const s of segs) expect((s.iova / 0x10000n) === ((s.iova + BigInt(s.length) - 1n) / 0x10000n)).toBe(true);
  });

  test("bad arguments are EINVAL", () => {
    expect(() => dmaSegments(0n, 10, 0)).toThrow(VfioError);
    expect(() => dmaSegments(0n, -1, 10)).toThrow(VfioError);
    expect(() => dmaSegments(0n, 10, 10, { boundary: 3000 })).toThrow(VfioError);
  });
});
