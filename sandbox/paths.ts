/**
 * Where the sandbox keeps its downloads, builds and logs.
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** Root of the bun-vfio package (the folder holding package.json). */
export const PACKAGE_ROOT: string = resolve(import.meta.dirname!, "..");

/**
 * The cache folder, shared by every project on the machine: `$BUN_VFIO_CACHE`
 * if set, else `$XDG_CACHE_HOME/bun-vfio`, else `~/.cache/bun-vfio`. Holds
 * the private apt state, guest kernels, initramfs images and console logs.
 * Deleting it forces a fresh download.
 */
export function cacheDir(): string {
  const fromEnv = process.env.BUN_VFIO_CACHE;
  if (fromEnv) return resolve(fromEnv);
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith("/") ? xdg : join(homedir(), ".cache"), "bun-vfio");
}

/** Folder of guest console and kernel logs, one pair per profile (overwritten each run). */
export function logDir(): string {
  return join(cacheDir(), "logs");
}
