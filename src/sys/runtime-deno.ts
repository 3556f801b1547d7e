/** The Sys for Deno, chosen by the `deno` condition of package.json `imports["#runtime-sys"]`. */
export { denoSys as runtimeSys } from "./deno.ts";
