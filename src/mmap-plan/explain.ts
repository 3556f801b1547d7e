/** The human-readable account of a plan, as printed by `bar.plan.explain()` and the CLI. */
import { hex, humanBytes } from "../support/format.ts";
import type { MmapPlan } from "./types.ts";

/** Render `plan` as a few lines; `why` is the planner's sentence for the rule that applied. */
export function explainPlan(plan: MmapPlan, why: string): string {
  const width = Math.max(1, plan.size.toString(16).length);
  const span = (start: number, end: number) => `${hex(start, width)}-${hex(end, width)}`;
  const { isolation } = plan;
  const lines = [
    `BAR ${plan.bar}: ${hex(plan.size)} bytes (${humanBytes(plan.size)}), page size ${hex(plan.pageSize)} (${humanBytes(plan.pageSize)}), policy ${plan.policy}`,
    `isolation: ${isolation.level} (${isolation.isolated ? "MSIs isolated" : "MSIs not known to be isolated"})`,
    ...isolation.evidence.map((e) => `  ${e}`),
    `rule ${plan.rule}: ${why}`,
    "ranges:",
    ...(plan.ranges.length ? plan.ranges.map((r) => `  ${span(r.start, r.end)} ${r.access}  ${r.reason}`) : ["  (empty BAR)"]),
  ];
  if (plan.guarded.length) {
    lines.push("guarded (writes refused unless opted out):");
    for (const g of plan.guarded) lines.push(`  ${span(g.start, g.end)} ${g.what}`);
  }
  lines.push(`total: ${humanBytes(plan.mappedBytes)} mapped, ${humanBytes(plan.trappedBytes)} trapped`);
  return lines.join("\n");
}
