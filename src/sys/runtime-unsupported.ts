/**
 * The Sys for any other runtime (the `default` condition of package.json
 * `imports["#runtime-sys"]`, also what tsc resolves for types): every call
 * throws, naming the runtimes that work. Node has no FFI for the library.
 */
import type { Sys } from "./types.ts";

function unsupported(): never {
  throw new Error("bun-vfio needs Bun (bun:ffi) or Deno (Deno.dlopen); this runtime has neither. Run with `bun` or `deno run -A`.");
}

/** A Sys whose every call throws (the runtime is neither Bun nor Deno). */
export const runtimeSys: Sys = new Proxy({ name: "unsupported", arch: "other" } as Sys, {
  get: (target, key) => (key === "name" || key === "arch" ? target[key] : unsupported),
});
