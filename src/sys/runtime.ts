/**
 * Which {@link Sys} the library uses: the running runtime's, or one a test
 * installs. The runtime's is picked at module resolution by package.json
 * `imports["#runtime-sys"]` (conditions `deno`, `bun`), so neither runtime
 * ever loads the other's module (bun:ffi does not exist on Deno). Both
 * implementations open libc on first use, not at import.
 */
import type { Sys } from "./types.ts";
import { runtimeSys } from "#runtime-sys";

let current: Sys | undefined;

/** The runtime's system interface (libc is opened on the first call that needs it). */
export function sys(): Sys {
  return (current ??= runtimeSys);
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
