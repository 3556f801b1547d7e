import type { IsolationLevel, IsolationVerdict } from "./types.ts";

/**
 * Build an `IsolationVerdict` with `isolated` derived from the level (true for
 * `attested` and `observed`), e.g. `isolationVerdict("none", ["noiommu container"])`
 * when you know better than `detectIsolation()`.
 */
export function isolationVerdict(level: IsolationLevel, evidence: string[] = []): IsolationVerdict {
  return { level, evidence, isolated: level === "attested" || level === "observed" };
}
