/**
 * NVMe facts this driver uses, from the NVM Express Base Specification 2.0
 * (controller registers 3.1, queue entries 4.2 / 4.6, admin commands 5,
 * status codes 4.6.1.2) and the NVM Command Set Specification (read, write,
 * flush, Identify Namespace). Numbers only: no behaviour lives here.
 */

/** Controller registers (offsets in BAR0). */
export const REG = {
  CAP: 0x00, VS: 0x08, INTMS: 0x0c, INTMC: 0x10, CC: 0x14, CSTS: 0x1c,
  AQA: 0x24, ASQ: 0x28, ACQ: 0x30, CMBLOC: 0x38, CMBSZ: 0x3c,
  /** First doorbell; SQ y tail at DOORBELLS + 2y * stride, CQ y head at DOORBELLS + (2y + 1) * stride. */
  DOORBELLS: 0x1000,
} as const;

/** CC fields. */
export const CC = {
  EN: 1,
  /** CSS = 000b: the NVM command set. */
  CSS_NVM: 0 << 4,
  /** MPS: memory page size 2^(12 + MPS). */
  mps: (shift: number) => (shift - 12) << 7,
  /** SHN = 01b: normal shutdown. */
  SHN_NORMAL: 1 << 14,
  SHN_MASK: 3 << 14,
  /** IOSQES = 6 (64-byte entries), IOCQES = 4 (16-byte entries). */
  ENTRY_SIZES: (6 << 16) | (4 << 20),
} as const;

/** CSTS fields. */
export const CSTS = { RDY: 1, CFS: 2, SHST_MASK: 3 << 2, SHST_COMPLETE: 2 << 2 } as const;

/** Admin command opcodes. */
export const ADMIN = {
  DELETE_SQ: 0x00, CREATE_SQ: 0x01, DELETE_CQ: 0x04, CREATE_CQ: 0x05,
  IDENTIFY: 0x06, ABORT: 0x08, SET_FEATURES: 0x09, GET_FEATURES: 0x0a,
} as const;

/** NVM command set opcodes. */
export const NVM = { FLUSH: 0x00, WRITE: 0x01, READ: 0x02 } as const;

/** Identify CNS values. */
export const CNS = { NAMESPACE: 0x00, CONTROLLER: 0x01 } as const;

/** Feature identifiers. */
export const FEATURE = { NUMBER_OF_QUEUES: 0x07 } as const;

export const SQE_BYTES = 64;
export const CQE_BYTES = 16;

/** Names of status codes, by status code type, for error messages. */
const STATUS_NAMES: Record<number, Record<number, string>> = {
  0: {
    0x00: "Successful Completion", 0x01: "Invalid Command Opcode", 0x02: "Invalid Field in Command",
    0x03: "Command ID Conflict", 0x04: "Data Transfer Error", 0x05: "Commands Aborted due to Power Loss",
    0x06: "Internal Error", 0x07: "Command Abort Requested", 0x08: "Command Aborted due to SQ Deletion",
    0x0b: "Invalid Namespace or Format", 0x0d: "Invalid SGL Segment Descriptor", 0x0f: "Data SGL Length Invalid",
    0x13: "PRP Offset Invalid", 0x80: "LBA Out of Range", 0x81: "Capacity Exceeded", 0x82: "Namespace Not Ready",
  },
  1: {
    0x00: "Completion Queue Invalid", 0x01: "Invalid Queue Identifier", 0x02: "Invalid Queue Size",
    0x03: "Abort Command Limit Exceeded", 0x08: "Invalid Interrupt Vector", 0x0d: "Feature Identifier Not Saveable",
    0x0e: "Feature Not Changeable",
  },
  2: { 0x80: "Write Fault", 0x81: "Unrecovered Read Error", 0x85: "Compare Failure", 0x86: "Access Denied" },
};

const SCT_NAMES = ["Generic Command Status", "Command Specific Status", "Media and Data Integrity Errors", "Path Related Status"];

/** "SCT 0x0 (Generic Command Status), SC 0x80 (LBA Out of Range)". */
export function describeStatus(sct: number, sc: number): string {
  const scName = STATUS_NAMES[sct]?.[sc] ?? (sct === 7 ? "vendor specific" : "unknown");
  return `SCT 0x${sct.toString(16)} (${SCT_NAMES[sct] ?? "reserved"}), SC 0x${sc.toString(16).padStart(2, "0")} (${scName})`;
}
