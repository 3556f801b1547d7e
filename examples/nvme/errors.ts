/**
 * Errors of the NVMe driver: all are bun-vfio `VfioError`s (op, code, errno,
 * path, hint), so callers handle one class.
 */
import { VfioError } from "bun-vfio";
import { describeStatus } from "./spec.ts";

/** A command the controller completed with a non-zero status: names the command, its queue, CID, SCT and SC. */
export class NvmeCommandError extends VfioError {
  /** Status code type (CQE DW3 bits 27:25). */
  readonly sct: number;
  /** Status code (CQE DW3 bits 24:17). */
  readonly sc: number;
  /** Do Not Retry bit. */
  readonly dnr: boolean;
  constructor(command: string, qid: number, cid: number, status: number, path: string) {
    const sc = status & 0xff;
    const sct = (status >>> 8) & 7;
    super({
      op: `NVMe ${command} (queue ${qid}, CID ${cid})`,
      code: "EIO", // the device completed the command with an error status (sct/sc below)
      errno: 5,
      path,
      detail: describeStatus(sct, sc),
      hint: "The controller refused the command: the status names why (NVMe base specification, status codes).",
    });
    this.sct = sct;
    this.sc = sc;
    this.dnr = ((status >>> 14) & 1) === 1;
  }
}

/** A request the driver refuses before anything reaches the device (EINVAL). */
export function badRequest(command: string, detail: string, hint: string, path: string): VfioError {
  return new VfioError({ op: `NVMe ${command}`, code: "EINVAL", errno: 22, path, detail, hint });
}

/** A bounded wait that ran out (ETIMEDOUT). */
export function timedOut(what: string, ms: number, path: string, hint: string): VfioError {
  return new VfioError({ op: what, code: "ETIMEDOUT", errno: 110, path, detail: `no answer within ${ms} ms`, hint });
}

/** A command that was outstanding when the controller closed (ECANCELED). */
export function cancelled(command: string, qid: number, cid: number, path: string, why: string): VfioError {
  return new VfioError({
    op: `NVMe ${command} (queue ${qid}, CID ${cid})`, code: "ECANCELED", errno: 125, path, detail: why,
    hint: "Wait for outstanding I/O before closing the controller.",
  });
}
