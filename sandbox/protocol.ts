/**
 * What the host and the guest's /init agree on: console markers, the layout
 * of the shared folder, and where results appear inside the guest.
 */

/** Printed by /init as soon as it runs (the kernel booted). */
export const MARK_INIT = "<<bun-vfio:init>>";
/** Printed by /init right before the command starts. */
export const MARK_RUN = "<<bun-vfio:run>>";
/** Printed by /init after the command, followed by its status and `>>`. */
export const MARK_EXIT = "<<bun-vfio:exit ";
/** Prefix of /init's own progress and error lines. */
export const INIT_PREFIX = "bun-vfio init:";

/** 9p mount tag of the host's `/`, shared read-only. */
export const TAG_HOST = "host";
/** 9p mount tag of the per-run writable share. */
export const TAG_SHARE = "share";

/**
 * Inside the guest (in the chroot), the folder where the command writes
 * results; on the host they land in the run's `out/` folder (see
 * `RunOptions.outDir`). Also given to the command as `$BUN_VFIO_RESULTS`.
 */
export const GUEST_RESULTS_DIR = "/tmp/bun-vfio-results";

/** Files of the share's `ctl/` folder. */
export const CTL = {
  /** Shell variables for /init: BIND, WORKDIR, RESULTS. Written by the host. */
  job: "ctl/job.sh",
  /** The command as a shell script run in the chroot. Written by the host. */
  cmd: "ctl/cmd.sh",
  /** The command's exit status. Written by the guest. */
  status: "ctl/status",
  /** The whole kernel log (`/proc/kmsg`), streamed by the guest. */
  kernelLog: "ctl/kernel.log",
} as const;

/** The share's folder that the command sees as {@link GUEST_RESULTS_DIR}. */
export const SHARE_OUT = "out";

/** The QMP bridge's files, in the results share's `.qmp/` folder (see monitor.ts). */
export const QMP = {
  /** Folder under `$BUN_VFIO_RESULTS` (host: the share's `out/`). */
  dir: ".qmp",
  /** Written by the guest: `{"execute": ..., "arguments": ...}`. */
  request: (id: string) => `request-${id}.json`,
  requestPattern: /^request-([\w-]+)\.json$/,
  /** Written by the host: QEMU's `{"return": ...}` or `{"error": ...}`. */
  reply: (id: string) => `reply-${id}.json`,
  /** Every QMP event, one JSON object a line, appended by the host. */
  events: "events.jsonl",
} as const;
