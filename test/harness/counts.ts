/**
 * Test counts of one `bun test` run, from its JUnit report and/or its
 * console summary (` N pass`, ` N fail`, ` N skip`, ` N filtered out`).
 */

/** Counts of one suite. */
export interface Counts {
  /** Tests that passed. */
  passed: number;
  /** Tests that failed (at least 1 when the suite could not run or bun test failed outside a test). */
  failed: number;
  /** Tests skipped or marked todo (not counting tests a name filter left out). */
  skipped: number;
}

/** The root `<testsuites>` totals of a Bun JUnit report, or null when absent or malformed. */
export function parseJunit(xml: string): { tests: number; failures: number; errors: number; skipped: number } | null {
  const root = /<testsuites\b([^>]*)>/.exec(xml);
  if (!root) return null;
  const attr = (name: string): number => {
    const m = new RegExp(`\\b${name}="(\\d+)"`).exec(root[1]!);
    return m ? Number(m[1]) : 0;
  };
  if (!/\btests="\d+"/.test(root[1]!)) return null;
  return { tests: attr("tests"), failures: attr("failures"), errors: attr("errors"), skipped: attr("skipped") };
}

/** The summary numbers bun test printed, each undefined when the line is absent. */
export interface ConsoleSummary {
  pass?: number;
  fail?: number;
  skip?: number;
  todo?: number;
  filtered?: number;
  /** " N error(s)": errors outside tests. */
  errors?: number;
  /** "matched 0 tests" (a name filter selected nothing). */
  noMatch: boolean;
}

/** Parse bun test's console summary from its output (ANSI colours allowed). */
export function parseConsole(output: string): ConsoleSummary {
  const text = output.replace(/\x1b\[[0-9;]*m/g, "");
  const num = (re: RegExp): number | undefined => {
    let last: number | undefined;
    for (const m of text.matchAll(re)) last = Number(m[1]);
    return last;
  };
  return {
    pass: num(/^\s*(\d+) pass\s*$/gm),
    fail: num(/^\s*(\d+) fail\s*$/gm),
    skip: num(/^\s*(\d+) skip\s*$/gm),
    todo: num(/^\s*(\d+) todo\s*$/gm),
    filtered: num(/^\s*(\d+) filtered out\s*$/gm),
    errors: num(/^\s*(\d+) errors?\s*$/gm),
    noMatch: /matched 0 tests/.test(text),
  };
}

/**
 * Counts of a finished `bun test`: from the JUnit totals when present
 * (minus tests a name filter left out, which JUnit reports as skipped),
 * else from the console summary. A non-zero exit with no failing test
 * (an error outside tests, a crash) counts as one failure; so does a
 * run that reported nothing at all. A filter that matched nothing is
 * not a failure.
 * @param junitXml the report, or null when it was not written
 * @param output everything bun test printed
 * @param status bun test's exit status
 * @returns the counts and, when something was off, a note saying what
 */
export function countsOf(junitXml: string | null, output: string, status: number): { counts: Counts; note?: string } {
  const c = parseConsole(output);
  const j = junitXml ? parseJunit(junitXml) : null;
  let counts: Counts;
  if (j) {
    const failed = j.failures + j.errors;
    // JUnit lists filtered-out tests as skipped; when the filter matched nothing, all of them were.
    const skipped = c.noMatch ? 0 : Math.max(0, j.skipped - (c.filtered ?? 0));
    counts = { passed: Math.max(0, j.tests - j.failures - j.errors - j.skipped), failed, skipped };
  } else if (c.pass !== undefined || c.fail !== undefined) {
    counts = { passed: c.pass ?? 0, failed: c.fail ?? 0, skipped: (c.skip ?? 0) + (c.todo ?? 0) };
  } else if (c.noMatch) {
    return { counts: { passed: 0, failed: 0, skipped: 0 }, note: "no test matched the name filter" };
  } else {
    return { counts: { passed: 0, failed: 1, skipped: 0 }, note: `bun test reported no results (exit status ${status})` };
  }
  if (status !== 0 && counts.failed === 0) {
    if (c.noMatch && counts.passed === 0) return { counts, note: "no test matched the name filter" };
    counts.failed = 1;
    return { counts, note: `bun test exited with status ${status} without a failing test${c.errors ? ` (${c.errors} error(s) outside tests)` : ""}` };
  }
  return { counts };
}
