/** The Sys for Bun, chosen by the `bun` condition of package.json `imports["#runtime-sys"]`. */
export { bunSys as runtimeSys } from "./bun.ts";
