/**
 * File descriptors: open by path, close once.
 */
import { O_CLOEXEC } from "./constants.ts";
import { check, type Hints } from "./check.ts";
import { sys } from "./runtime.ts";

/** open(2) with O_CLOEXEC; throws a VfioError carrying `hints` on failure. */
export function openPath(path: string, flags: number, op = "open", hints?: Hints): number {
  return check(sys().open(path, flags | O_CLOEXEC), op, path, hints);
}

/** close(2), throwing on failure (EBADF means a double close: a library bug). */
export function closeFd(fd: number, path?: string): void {
  check(sys().close(fd), "close", path);
}
