/**
 * The mmap decision: per BAR, which bytes are mmapped and which are trapped
 * through pread/pwrite, taking MSI-X and interrupt remapping into account.
 * See DESIGN.md, "The mmap decision". Pure code; the pieces live in
 * src/mmap-plan/.
 */
export type {
  BarRegionInfo,
  GuardedRange,
  IsolationLevel,
  IsolationVerdict,
  MmapPlan,
  MmapPolicy,
  MsixLayout,
  PlanRange,
  SparseArea,
} from "./types.ts";
export { planBarMmap } from "./plan.ts";
export { isolationVerdict } from "./verdict.ts";
