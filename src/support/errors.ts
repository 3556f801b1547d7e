import type { ErrnoName } from "./errno-names.ts";

/**
 * Codes of the library's own checks, kept apart from the kernel's errno
 * names: `ECLOSED` (the object or its owner was closed), `ENOTVIABLE` (an
 * IOMMU group has a member bound to a non-VFIO driver).
 */
export type LibraryErrorCode = "ECLOSED" | "ENOTVIABLE";

/** A VfioError's `code`: an errno name (from the kernel, or the errno the library's check stands for) or a library code. */
export type VfioErrorCode = ErrnoName | LibraryErrorCode | `E${number}`;

/**
 * The one error class of bun-vfio. Every failure of a system call, a sysfs
 * access or a bad argument surfaces as a `VfioError` naming the operation,
 * the errno (number and symbolic name), the path involved and a one-line hint
 * telling the user what to do next.
 */
export class VfioError extends Error {
  override readonly name = "VfioError";
  /** What was attempted, e.g. `"VFIO_GROUP_SET_CONTAINER"` or `"open"`. */
  readonly op: string;
  /** The errno value, or 0 when the failure is not from a system call. */
  readonly errno: number;
  /** The symbolic errno name (`"EPERM"`), or a library code (`"ECLOSED"`, `"ENOTVIABLE"`, with `errno` 0 or EBADF). */
  readonly code: VfioErrorCode;
  /** The file or device the operation was about, when there is one. */
  readonly path: string | undefined;
  /** One line that tells the user what to do about it. */
  readonly hint: string;

  constructor(init: { op: string; errno?: number; code: VfioErrorCode; path?: string | undefined; hint: string; detail?: string; cause?: unknown }) {
    const where = init.path ? ` (${init.path})` : "";
    const detail = init.detail ? `: ${init.detail}` : "";
    super(`${init.op} failed with ${init.code}${where}${detail}. ${init.hint}`, init.cause === undefined ? undefined : { cause: init.cause });
    this.op = init.op;
    this.errno = init.errno ?? 0;
    this.code = init.code;
    this.path = init.path;
    this.hint = init.hint;
  }
}

/** An argument the library rejects before any system call is made. */
export function invalidArgument(op: string, detail: string, hint: string, path?: string): VfioError {
  return new VfioError({ op, errno: 22, code: "EINVAL", path, detail, hint });
}

/** The error thrown by any method of an object that was already closed. */
export function useAfterClose(op: string, what: string, path?: string): VfioError {
  return new VfioError({
    op,
    errno: 9,
    code: "ECLOSED",
    path,
    detail: `the ${what} is closed`,
    hint: `Open the ${what} again; a closed ${what} cannot be used.`,
  });
}
