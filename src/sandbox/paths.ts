/**
 * Where the sandbox keeps its downloads, builds and logs.
 */
import { join, resolve } from "node:path";

/** Root of the bun-vfio package (the folder holding package.json). */
export const PACKAGE_ROOT: string = resolve(import.meta.dir, "..", "..");

/**
 * The cache folder: `$BUN_VFIO_CACHE` if set, else `<package root>/.cache/sandbox`
 * (git-ignored). Holds the private apt state, the guest kernel, initramfs
 * images and console logs. Deleting it forces a fresh download.
 */
export function cacheDir(): string {
  const fromEnv = process.env.BUN_VFIO_CACHE;
  return fromEnv ? resolve(fromEnv) : join(PACKAGE_ROOT, ".cache", "sandbox");
}

/** Folder of guest console and kernel logs, one pair per profile (overwritten each run). */
export function logDir(): string {
  return join(cacheDir(), "logs");
}
