/**
 * File descriptors: open by path, close once, and a NUL-terminated path buffer.
 */
import { libc, O_CLOEXEC } from "./libc.ts";
import { check, type Hints } from "./check.ts";

/** A NUL-terminated UTF-8 copy of `s`, for `const char *` arguments. */
export function cString(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** open(2) with O_CLOEXEC; throws a VfioError carrying `hints` on failure. */
export function openPath(path: string, flags: number, op = "open", hints?: Hints): number {
  return check(libc.open(cString(path), flags | O_CLOEXEC, 0), op, path, hints);
}

/** close(2), throwing on failure (EBADF means a double close: a library bug). */
export function closeFd(fd: number, path?: string): void {
  check(libc.close(fd), "close", path);
}
