/**
 * One place that turns a failed system call into a VfioError.
 */
import { VfioError } from "../support/errors.ts";
import { errnoMessage, errnoName } from "./errno.ts";

/** Hints by errno name for one call site; `default` covers the rest. */
export type Hints = { readonly [code: string]: string | undefined; readonly default?: string };

/** Hints that fit most calls; call sites add their own in front. */
const COMMON_HINTS: Hints = {
  EACCES: "Permission denied: run as root, or give your user access to this path (chown or a udev rule).",
  EPERM: "Operation not permitted: run as root (CAP_SYS_RAWIO/CAP_IPC_LOCK may be needed).",
  ENOENT: "The path does not exist: check the name, and that the kernel module providing it is loaded.",
  ENOTTY: "The kernel does not know this ioctl on this file: the kernel may be too old, or the fd is of another kind.",
  EBADF: "The file descriptor is not open: the object was probably closed.",
  ENOMEM: "The kernel ran out of memory or address space for this request.",
  EFAULT: "The kernel could not read or write the argument buffer (a library bug: please report it).",
  EINTR: "Interrupted by a signal: retry the call.",
};

/** The VfioError for a call that failed with `errno` (a positive number). */
export function syscallError(op: string, path: string | undefined, hints: Hints, errno: number): VfioError {
  const code = errnoName(errno);
  const hint = hints[code] ?? COMMON_HINTS[code] ?? hints.default ?? `See the kernel log (dmesg) for details about ${op}.`;
  return new VfioError({ op, errno, code, path, detail: errnoMessage(errno), hint });
}

/**
 * Return `ret` when it is not negative, otherwise throw the VfioError for
 * errno `-ret`. Wraps a seam call: `check(sys().ioctl(...), op, path)`.
 */
export function check(ret: number, op: string, path?: string, hints: Hints = {}): number {
  if (ret < 0) throw syscallError(op, path, hints, -ret);
  return ret;
}
