/**
 * Which {@link Sys} the library uses: the running runtime's, chosen on
 * first use, or one a test installs.
 */
import type { Sys } from "./types.ts";
import { bunSys } from "./bun.ts";

let current: Sys | undefined;

/** The runtime's system interface (libc is opened on the first call that needs it). */
export function sys(): Sys {
  return (current ??= bunSys);
}

/**
 * Replaces the system interface, for unit tests (a fake kernel) and for
 * embedding; returns the previous one so a test can put it back.
 */
export function useSys(impl: Sys): Sys {
  const previous = sys();
  current = impl;
  return previous;
}
