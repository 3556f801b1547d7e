/**
 * The pure parts of DMA buffers: the RLIMIT_MEMLOCK hint, the huge-page
 * shortage check on a fake sysfs tree, the mmap flags for huge pages.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exceedsMemlock, memlockHint, memlockStatus } from "../../src/iommu/memlock.ts";
import { HUGE_PAGES, hugePageMmapFlags, hugePageShortage } from "../../src/iommu/huge-pages.ts";
import { MAP_HUGETLB } from "../../src/sys/constants.ts";

const MiB = 1n << 20n;

describe("RLIMIT_MEMLOCK hint", () => {
  test("over the limit without CAP_IPC_LOCK: the limit, what is locked, what was asked, how to raise it", () => {
    const status = { limit: 8n * MiB, locked: 6n * MiB, capIpcLock: false };
    expect(exceedsMemlock(status, 4n * MiB)).toBe(true);
    const hint = memlockHint(status, 4n * MiB);
    expect(hint).toContain("RLIMIT_MEMLOCK is 8 MiB (8388608 bytes)");
    expect(hint).toContain("6 MiB (6291456 bytes) is already locked (VmLck)");
    expect(hint).toContain("mapping 4 MiB (4194304 bytes) more needs 10 MiB (10485760 bytes)");
    expect(hint).toContain("`ulimit -l 10240`");
    expect(hint).toContain("prlimit --memlock=10485760:10485760");
    expect(hint).toContain("LimitMEMLOCK=");
    expect(hint).toContain("CAP_IPC_LOCK");
    expect(hint).not.toContain("\n");
  });

  test("under the limit, unlimited, or with CAP_IPC_LOCK: the limit is not blamed", () => {
    expect(exceedsMemlock({ limit: 8n * MiB, locked: 0n, capIpcLock: false }, 8n * MiB)).toBe(false);
    expect(memlockHint({ limit: 8n * MiB, locked: 0n, capIpcLock: false }, MiB)).toContain("not the cause: RLIMIT_MEMLOCK is 8 MiB");
    expect(memlockHint({ limit: undefined, locked: 0n, capIpcLock: false }, MiB)).toContain("RLIMIT_MEMLOCK is unlimited");
    const cap = { limit: 64n * 1024n, locked: 0n, capIpcLock: true };
    expect(exceedsMemlock(cap, 1n << 30n)).toBe(false);
    expect(memlockHint(cap, 1n << 30n)).toContain("CAP_IPC_LOCK is effective");
  });

  test("memlockStatus reads this process: getrlimit agrees with /proc/self/limits", () => {
    const status = memlockStatus();
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max locked memory"))!;
    const soft = line.split(/\s{2,}/)[1]!;
    expect(status.limit === undefined ? "unlimited" : String(status.limit)).toBe(soft);
    expect(status.locked).toBeGreaterThanOrEqual(0n);
    expect(typeof status.capIpcLock).toBe("boolean");
  });
});

describe("huge pages", () => {
  const root = mkdtempSync(join(tmpdir(), "bun-vfio-hugepages-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, "sys/kernel/mm/hugepages/hugepages-2048kB");
  mkdirSync(dir, { recursive: true });
  const set = (free: number, resv: number, nr: number) => {
    writeFileSync(join(dir, "free_hugepages"), `${free}\n`);
    writeFileSync(join(dir, "resv_hugepages"), `${resv}\n`);
    writeFileSync(join(dir, "nr_hugepages"), `${nr}\n`);
  };

  test("enough free pages beyond the reserved ones: no shortage", () => {
    set(4, 1, 4);
    expect(hugePageShortage("2M", 3, { root })).toBeUndefined();
  });

  test("reserved pages are not free: the shortage says how many and how to reserve more", () => {
    set(4, 3, 4);
    const why = hugePageShortage("2M", 2, { root })!;
    expect(why).toBe(`1 free 2M huge pages, 2 needed: reserve more with \`echo 5 > ${dir}/nr_hugepages\` (as root)`);
  });

  test("a size the host lacks names the missing folder", () => {
    expect(hugePageShortage("1G", 1, { root })).toContain("this host has no 1G huge pages");
    expect(hugePageShortage("1G", 1, { root })).toContain("hugepages-1048576kB");
  });

  test("mmap flags: MAP_HUGETLB with log2(size) at MAP_HUGE_SHIFT (26)", () => {
    expect(hugePageMmapFlags("2M")).toBe(MAP_HUGETLB | (21 << 26));
    expect(hugePageMmapFlags("1G")).toBe(MAP_HUGETLB | (30 << 26));
    expect(HUGE_PAGES["2M"].bytes).toBe(2 * 1024 * 1024);
  });
});
