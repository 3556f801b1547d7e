/**
 * Input checks for the planner. A plan built from nonsense (a page size that
 * is not a power of two, a negative size) would silently map the wrong
 * bytes, so it is refused before anything is computed.
 */
import { invalidArgument } from "../support/errors.ts";
import type { BarRegionInfo, IsolationVerdict, MmapPolicy, MsixLayout } from "./types.ts";

const OP = "planBarMmap";
const POLICIES: readonly MmapPolicy[] = ["auto", "strict", "force"];
const LEVELS: readonly string[] = ["attested", "observed", "capable", "none", "unknown"];

function requireCount(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw invalidArgument(OP, `${what} is ${value}`, `Pass ${what} as a non-negative integer number of bytes.`);
  }
}

/** Throw a `VfioError` (EINVAL) unless the planner's input makes sense. */
export function validatePlanInput(input: {
  region: BarRegionInfo;
  msix?: MsixLayout;
  pageSize: number;
  isolation: IsolationVerdict;
  policy: MmapPolicy;
}): void {
  const { region, msix, pageSize, isolation, policy } = input;
  if (!Number.isSafeInteger(pageSize) || pageSize <= 0 || (pageSize & (pageSize - 1)) !== 0) {
    throw invalidArgument(OP, `page size ${pageSize} is not a power of two`, "Pass the host page size from sysconf(_SC_PAGESIZE).");
  }
  if (!Number.isInteger(region.index) || region.index < 0 || region.index > 5) {
    throw invalidArgument(OP, `BAR index ${region.index} is not 0..5`, "Plan only BAR regions (VFIO_PCI_BAR0_REGION_INDEX..BAR5).");
  }
  requireCount(region.size, "region size");
  for (const [i, area] of (region.sparseAreas ?? []).entries()) {
    requireCount(area.offset, `sparse area ${i} offset`);
    requireCount(area.size, `sparse area ${i} size`);
  }
  if (msix) {
    for (const key of ["tableOffset", "tableSize", "pbaOffset", "pbaSize"] as const) requireCount(msix[key], `MSI-X ${key}`);
  }
  if (!POLICIES.includes(policy)) {
    throw invalidArgument(OP, `policy ${String(policy)} is unknown`, 'Use "auto", "strict" or "force".');
  }
  if (!LEVELS.includes(isolation.level)) {
    throw invalidArgument(OP, `isolation level ${String(isolation.level)} is unknown`, "Build the verdict with detectIsolation() or isolationVerdict().");
  }
  const expected = isolation.level === "attested" || isolation.level === "observed";
  if (isolation.isolated !== expected) {
    throw invalidArgument(OP, `isolation.isolated is ${isolation.isolated} for level ${isolation.level}`, "isolated must be true exactly for attested and observed.");
  }
}
