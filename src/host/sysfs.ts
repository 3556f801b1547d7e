import { closeSync, constants as fsConstants, openSync, readFileSync, readlinkSync, writeSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { basename, join } from "node:path";
import { VfioError, type VfioErrorCode } from "../support/errors.ts";

/** Options shared by every host helper. */
export interface HostOptions {
  /**
   * Directory that stands in for `/`: sysfs is read under `<root>/sys`,
   * device nodes under `<root>/dev`. Default `"/"`. Tests point it at a fake tree.
   */
  readonly root?: string;
}

/** Joins `parts` under the root directory. */
export function hostPath(options: HostOptions | undefined, ...parts: string[]): string {
  return join(options?.root ?? "/", ...parts);
}

/** `/sys/bus/pci/devices/<bdf>` under the root. */
export function pciDevicePath(options: HostOptions | undefined, bdf: string): string {
  return hostPath(options, "sys/bus/pci/devices", bdf);
}

/** Node's fs errors carry a symbolic `code`; anything else is not from the file system. */
function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** True when `err` is a file-system error with the given code, e.g. `"ENOENT"`. */
export function isErrno(err: unknown, code: string): boolean {
  return errnoCode(err) === code;
}

const RUN_AS_ROOT = "Run as root: sysfs writes need CAP_SYS_ADMIN (e.g. `sudo bun <script>`).";

/**
 * Turns a Node fs error into a VfioError. Permission errors always get the
 * "run as root" hint; other errors get `hint`.
 */
export function hostError(op: string, path: string, err: unknown, hint: string): VfioError {
  const code = errnoCode(err) ?? "EIO";
  const errno = (osConstants.errno as Record<string, number>)[code] ?? 0;
  const permission = code === "EACCES" || code === "EPERM";
  const detail = err instanceof Error ? err.message : String(err);
  return new VfioError({ op, errno, code: code as VfioErrorCode, path, detail, hint: permission ? RUN_AS_ROOT : hint, cause: err });
}

/** Reads a sysfs attribute as trimmed text, or `undefined` when it does not exist. */
export function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    if (isErrno(err, "ENOENT") || isErrno(err, "ENOTDIR")) return undefined;
    throw hostError("read", path, err, "Check that sysfs is mounted at /sys and readable.");
  }
}

/** Reads a hex attribute such as `vendor` (`"0x8086"`), or `undefined` when absent or unparsable. */
export function readHexOptional(path: string): number | undefined {
  const text = readOptional(path);
  if (text === undefined) return undefined;
  const value = parseInt(text, 16);
  return Number.isNaN(value) ? undefined : value;
}

/** The last path component a symlink points to (`driver` → `"vfio-pci"`), or `undefined` when there is no link. */
export function linkTargetName(path: string): string | undefined {
  try {
    return basename(readlinkSync(path));
  } catch (err) {
    if (isErrno(err, "ENOENT") || isErrno(err, "ENOTDIR")) return undefined;
    throw hostError("readlink", path, err, "Check that sysfs is mounted at /sys and readable.");
  }
}

/** A function that writes one sysfs attribute; the default is `fs.writeFileSync`. */
export type SysfsWriter = (path: string, value: string) => void;

/** Writes `value` to a sysfs attribute, mapping failures to a VfioError with `hint`. */
export function writeAttribute(write: SysfsWriter, op: string, path: string, value: string, hint: string): void {
  try {
    write(path, value);
  } catch (err) {
    throw hostError(op, path, err, hint);
  }
}

/**
 * The default {@link SysfsWriter}: opens the attribute write-only without
 * O_CREAT (so a missing attribute is ENOENT, not a misleading EACCES from
 * sysfs refusing to create a file) and stores the value with one `write(2)`,
 * as sysfs expects.
 */
export const writeSysfs: SysfsWriter = (path, value) => {
  const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_TRUNC);
  try {
    writeSync(fd, value);
  } finally {
    closeSync(fd);
  }
};
