/**
 * Exception-safe teardown: every step runs even when an earlier one throws,
 * and the first failure is rethrown once all have run.
 */

/** Runs each step in order, continuing past failures; rethrows the first one at the end. */
export function runAll(steps: Iterable<() => void>): void {
  let failed = false;
  let first: unknown;
  for (const step of steps) {
    try {
      step();
    } catch (err) {
      if (!failed) first = err;
      failed = true;
    }
  }
  if (failed) throw first;
}
