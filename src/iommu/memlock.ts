/**
 * Locked-memory accounting for DMA mappings. vfio_iommu_type1 pins every
 * mapped page and charges it to the process's locked memory (VmLck), which
 * RLIMIT_MEMLOCK caps unless the process has CAP_IPC_LOCK (root does); over
 * the limit, VFIO_IOMMU_MAP_DMA fails with ENOMEM and the kernel logs
 * "RLIMIT_MEMLOCK (...) exceeded".
 */
import { readFileSync } from "node:fs";
import { humanBytes } from "../support/format.ts";
import { RLIMIT_MEMLOCK } from "../sys/constants.ts";
import { sys } from "../sys/runtime.ts";

/** RLIM_INFINITY: `(rlim_t)-1`. */
const RLIM_INFINITY = (1n << 64n) - 1n;
/** CAP_IPC_LOCK's bit in the capability sets. */
const CAP_IPC_LOCK = 14n;

/** What decides whether a DMA mapping may pin more memory. */
export interface MemlockStatus {
  /** The soft RLIMIT_MEMLOCK in bytes, or undefined when unlimited. */
  limit: bigint | undefined;
  /** Memory already locked by this process (VmLck of /proc/self/status, which includes VFIO's pins), in bytes. */
  locked: bigint;
  /** CAP_IPC_LOCK is effective: the limit does not apply. */
  capIpcLock: boolean;
}

/** Reads the limit with getrlimit(RLIMIT_MEMLOCK) and VmLck/CapEff from /proc/self/status. */
export function memlockStatus(): MemlockStatus {
  const rlimit = sys().getrlimit(RLIMIT_MEMLOCK);
  const ok = typeof rlimit !== "number";
  const soft = ok ? rlimit.soft : 0n;
  let status = "";
  try {
    status = readFileSync("/proc/self/status", "utf8");
  } catch {
    // without procfs we only know the limit
  }
  const lockedKb = /^VmLck:\s+(\d+) kB/m.exec(status)?.[1];
  const capEff = /^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1];
  return {
    limit: !ok || soft === RLIM_INFINITY ? undefined : soft,
    locked: lockedKb === undefined ? 0n : BigInt(lockedKb) * 1024n,
    capIpcLock: capEff !== undefined && ((BigInt(`0x${capEff}`) >> CAP_IPC_LOCK) & 1n) === 1n,
  };
}

/** True when pinning `requested` more bytes would pass the limit for this process. */
export function exceedsMemlock(status: MemlockStatus, requested: bigint | number): boolean {
  return !status.capIpcLock && status.limit !== undefined && status.locked + BigInt(requested) > status.limit;
}

/**
 * The one-line hint for an ENOMEM from VFIO_IOMMU_MAP_DMA: the limit, what is
 * locked already, what was asked, and how to raise the limit.
 */
export function memlockHint(status: MemlockStatus, requested: bigint | number): string {
  const asked = BigInt(requested);
  if (!exceedsMemlock(status, asked)) {
    return `The host could not pin ${bytes(asked)} (out of memory; the locked-memory limit is not the cause: ${status.capIpcLock ? "CAP_IPC_LOCK is effective" : `RLIMIT_MEMLOCK ${status.limit === undefined ? "is unlimited" : `is ${bytes(status.limit)}`}`}). Free memory or map less.`;
  }
  const limit = status.limit!;
  const need = status.locked + asked;
  const kib = (need + 1023n) / 1024n;
  return `RLIMIT_MEMLOCK is ${bytes(limit)} and ${bytes(status.locked)} is already locked (VmLck): mapping ${bytes(asked)} more needs ${bytes(need)}. ` +
    `VFIO charges pinned DMA memory to this limit unless the process has CAP_IPC_LOCK (root has it): raise it with \`ulimit -l ${kib}\` (or unlimited) in the shell, ` +
    `\`prlimit --memlock=${need}:${need} --pid <pid>\`, LimitMEMLOCK= in a systemd unit or memlock in /etc/security/limits.conf.`;
}

function bytes(n: bigint): string {
  return `${humanBytes(Number(n))} (${n} bytes)`;
}
