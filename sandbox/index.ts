/**
 * The test sandbox: boot a real Linux kernel in QEMU with emulated PCI
 * devices bound to vfio-pci, and run a command (usually `bun test`) in it.
 */
export { runGuest, runInGuest, STATUS_GUEST_FAILED, STATUS_TIMEOUT, type GuestResult, type RunOptions } from "./runner.ts";
export { DEFAULT_PROFILE, getProfile, PROFILES, profileTestDirs, type GuestDevice, type Profile } from "./profiles.ts";
export { GUEST_RESULTS_DIR } from "./protocol.ts";
export { SandboxError } from "./log.ts";
export { kernelHighlights } from "./kernel-log.ts";
export { sandboxCommand } from "./cli.ts";
export { cacheDir, PACKAGE_ROOT } from "./paths.ts";
