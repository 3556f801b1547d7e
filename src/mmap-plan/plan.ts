/**
 * The mmap decision for one BAR (DESIGN.md, "The mmap decision"). Pure: no
 * system calls, so every case is unit-tested and the same result is shown to
 * users through `explain()`.
 */
import { explainPlan } from "./explain.ts";
import { bytesWith, mergeAdjacent, pageCeil, pageFloor, paint, unionIntervals } from "./ranges.ts";
import { msixMappableReason, msixTrappedBecause, REASON } from "./reasons.ts";
import type { BarRegionInfo, GuardedRange, IsolationVerdict, MmapPlan, MmapPolicy, MsixLayout, PlanRange } from "./types.ts";
import { validatePlanInput } from "./validate.ts";

interface Decision {
  rule: MmapPlan["rule"];
  /** One sentence: why this rule, for explain(). */
  why: string;
  ranges: PlanRange[];
}

/** The MSI-X table and PBA bytes that fall inside BAR `bar` of `size` bytes, in address order. */
function guardedIn(bar: number, size: number, msix: MsixLayout | undefined): GuardedRange[] {
  if (!msix) return [];
  const parts: GuardedRange[] = [];
  const add = (inBar: boolean, offset: number, length: number, what: GuardedRange["what"]) => {
    const start = Math.min(offset, size);
    const end = Math.min(offset + length, size);
    if (inBar && end > start) parts.push({ start, end, what });
  };
  add(msix.tableBar === bar, msix.tableOffset, msix.tableSize, "msix-table");
  add(msix.pbaBar === bar, msix.pbaOffset, msix.pbaSize, "msix-pba");
  return parts.sort((a, b) => a.start - b.start);
}

/** Trap the host pages holding the table and PBA; a page holding both says so. */
function trapMsixPages(ranges: PlanRange[], guarded: GuardedRange[], page: number): PlanRange[] {
  const pagesOf = (what: GuardedRange["what"]) => {
    const g = guarded.find((r) => r.what === what);
    return g ? { start: pageFloor(g.start, page), end: pageCeil(g.end, page) } : undefined;
  };
  const table = pagesOf("msix-table");
  const pba = pagesOf("msix-pba");
  let out = ranges;
  if (table) out = paint(out, table.start, table.end, "trap", REASON.msixTable);
  if (pba) out = paint(out, pba.start, pba.end, "trap", REASON.msixPba);
  if (table && pba) out = paint(out, Math.max(table.start, pba.start), Math.min(table.end, pba.end), "trap", REASON.msixTableAndPba);
  return out;
}

/** Rule 3: the kernel's areas, shrunk inward to whole pages, minus the MSI-X pages. */
function sparsePlan(size: number, page: number, areas: { offset: number; size: number }[]): PlanRange[] {
  if (size === 0) return [];
  let ranges: PlanRange[] = [{ start: 0, end: size, access: "trap", reason: REASON.outsideSparse }];
  const clipped = areas.map((a) => ({ start: Math.min(a.offset, size), end: Math.min(a.offset + a.size, size) }));
  for (const area of unionIntervals(clipped)) {
    // The kernel maps whole pages, so only full pages of an area (or its tail at the BAR end) are safe to map.
    const start = pageCeil(area.start, page);
    const end = area.end === size ? size : pageFloor(area.end, page);
    ranges = paint(ranges, area.start, area.end, "trap", REASON.sparseUnaligned);
    if (start < end) ranges = paint(ranges, start, end, "mmap", REASON.insideSparse);
  }
  return ranges;
}

function decide(region: BarRegionInfo, guarded: GuardedRange[], page: number, isolation: IsolationVerdict, policy: MmapPolicy): Decision {
  const size = region.size;
  const whole = (access: PlanRange["access"], reason: string): PlanRange[] => (size > 0 ? [{ start: 0, end: size, access, reason }] : []);
  if (!region.mmappable) {
    return { rule: 1, why: "the kernel does not allow mmap of this region: every access goes through pread/pwrite", ranges: whole("trap", REASON.noMmapFlag) };
  }
  if (region.msixMappable && policy !== "strict" && (isolation.isolated || policy === "force")) {
    const reason = msixMappableReason(isolation.level, isolation.isolated);
    const unsafe = isolation.isolated ? "" : " UNSAFE: a stray MSI-X table write can make the device send any MSI to any CPU;";
    return {
      rule: 2,
      why: `${reason}: the whole BAR is mapped (mmap length rounded up to the page);${unsafe} vectors are still set only via VFIO_DEVICE_SET_IRQS`,
      ranges: whole("mmap", reason),
    };
  }
  const msixHere = guarded.length > 0;
  const because = msixHere ? `; the pages holding MSI-X structures are trapped because ${msixTrappedBecause(region.msixMappable, policy, isolation.level)}` : "";
  if (region.sparseAreas) {
    const count = region.sparseAreas.length;
    return {
      rule: 3,
      why: `the kernel lists ${count} sparse-mmap area${count === 1 ? "" : "s"}: only their whole pages are mapped${because}`,
      ranges: trapMsixPages(sparsePlan(size, page, region.sparseAreas), guarded, page),
    };
  }
  return {
    rule: 4,
    why: msixHere ? `the kernel allows mmap and lists no sparse-mmap areas${because}` : "the kernel allows mmap and this BAR holds no MSI-X table or PBA: the whole BAR is mapped",
    ranges: trapMsixPages(whole("mmap", REASON.mmapAllowed), guarded, page),
  };
}

/**
 * Decide, for one BAR, which byte ranges are mmapped and which are trapped
 * through `pread`/`pwrite` on the device fd.
 *
 * Rules, in order:
 * 1. No `VFIO_REGION_INFO_FLAG_MMAP`: the whole BAR is trapped.
 * 2. `MSIX_MAPPABLE` and (MSIs isolated — attested or observed — or policy
 *    `force`), policy not `strict`: the whole BAR is mapped (the mmap length
 *    is the size rounded up to the page; ranges still describe `[0, size)`).
 * 3. Sparse-mmap areas listed: only their whole host pages are mapped (the
 *    kernel maps whole pages, so unaligned edges are trapped), never a page
 *    holding the MSI-X table or PBA; the rest is trapped.
 * 4. Otherwise: all but the host pages holding the MSI-X table and PBA.
 *
 * Ranges are ordered, non-overlapping and tile `[0, size)`; neighbours with
 * the same access and reason are merged (so one mmap range may span several
 * touching sparse areas). Every mmap range starts on a page boundary and ends
 * on one or at the BAR end. `guarded` lists the MSI-X table and PBA bytes in
 * this BAR whatever the rule. Pure: no system call is made.
 *
 * @throws VfioError (EINVAL) for a page size that is not a power of two, a
 * negative or fractional size or offset, a BAR index outside 0..5, an unknown
 * policy, or a verdict whose `isolated` disagrees with its level.
 */
export function planBarMmap(input: {
  region: BarRegionInfo;
  msix?: MsixLayout;
  pageSize: number;
  isolation: IsolationVerdict;
  policy?: MmapPolicy;
}): MmapPlan {
  const policy = input.policy ?? "auto";
  const { region, msix, pageSize, isolation } = input;
  validatePlanInput({ region, msix, pageSize, isolation, policy });
  const guarded = guardedIn(region.index, region.size, msix);
  const { rule, why, ranges: painted } = decide(region, guarded, pageSize, isolation, policy);
  const ranges = mergeAdjacent(painted);
  const plan: MmapPlan = {
    bar: region.index,
    size: region.size,
    pageSize,
    policy,
    isolation,
    rule,
    ranges,
    guarded,
    mappedBytes: bytesWith(ranges, "mmap"),
    trappedBytes: bytesWith(ranges, "trap"),
    explain: () => explainPlan(plan, why),
  };
  return plan;
}
