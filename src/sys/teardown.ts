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

/**
 * Releases an owner hands out to its children's resources, kept apart from
 * the owner itself: when the owner is garbage-collected unclosed, its
 * FinalizationRegistry runs them (ending interrupt waits that would keep
 * the process alive forever). The functions must not capture the owner.
 */
export class Lifetime {
  readonly #releases = new Set<() => void>();

  /** Keeps `release` until it is run or forgotten; returns the function that forgets it. */
  adopt(release: () => void): () => void {
    this.#releases.add(release);
    return () => void this.#releases.delete(release);
  }

  /** Runs every release still kept, continuing past failures (a backstop never throws). */
  releaseAll(): void {
    const releases = [...this.#releases];
    this.#releases.clear();
    for (const release of releases) {
      try {
        release();
      } catch {
        // best effort
      }
    }
  }
}
