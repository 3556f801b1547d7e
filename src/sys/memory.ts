/**
 * Host memory facts that must never be assumed.
 */
import { _SC_PAGESIZE } from "./constants.ts";
import { sys } from "./runtime.ts";

let cachedPageSize: number | undefined;

/** The host page size from sysconf(_SC_PAGESIZE): 4 KiB on most x86, 16/64 KiB on some arm64 and ppc64. */
export function pageSize(): number {
  cachedPageSize ??= sys().sysconf(_SC_PAGESIZE);
  return cachedPageSize;
}
