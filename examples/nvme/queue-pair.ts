/**
 * One NVMe submission/completion queue pair in DMA memory: builds 64-byte
 * submission entries (with PRP entries and lists), rings doorbells, reaps
 * 16-byte completion entries by their phase bit and tracks command
 * identifiers. No waiting happens here; the controller decides how to wait.
 */
import type { Bar, IrqVector, VfioSpace } from "bun-vfio";
import { DmaBuffer } from "bun-vfio";
import { CQE_BYTES, SQE_BYTES } from "./spec.ts";

/** Called once per command: `status` is CQE DW3 bits 31:17 (0 = success), or {@link STATUS_TIMEOUT} / {@link STATUS_CANCELLED}. */
export type Completion = (status: number, dw0: number, cid: number) => void;

/** Pseudo status: the command's deadline passed (its CID stays reserved until the device answers). */
export const STATUS_TIMEOUT = -1;
/** Pseudo status: the queue was deleted before the device answered. */
export const STATUS_CANCELLED = -2;

/** The controller memory page size this driver programs (CC.MPS = 0). */
export const NVME_PAGE = 4096;
/** PRP entries in one list page; transfers stay within one list (no chaining). */
export const PRP_LIST_ENTRIES = NVME_PAGE / 8;

const TWO32 = 2 ** 32;
const LOST: Completion = () => {};

/** How the completions of a queue are noticed. */
export type CompletionMode = "polled" | "interrupt";

/** Layout of one queue pair's DMA memory: SQ ring, CQ ring, then one PRP list page per CID. */
function layout(entries: number) {
  const sqBytes = Math.ceil((entries * SQE_BYTES) / NVME_PAGE) * NVME_PAGE;
  const cqBytes = Math.ceil((entries * CQE_BYTES) / NVME_PAGE) * NVME_PAGE;
  return { sq: 0, cq: sqBytes, prp: sqBytes + cqBytes, total: sqBytes + cqBytes + (entries - 1) * NVME_PAGE };
}

/**
 * A queue pair. `depth` (entries - 1) commands can be outstanding: a ring of
 * N entries is full at N - 1. CIDs are 0..depth-1; each owns one PRP list page.
 */
export class QueuePair implements Disposable {
  readonly qid: number;
  readonly entries: number;
  readonly depth: number;
  readonly mode: CompletionMode;
  /** The MSI-X vector of the CQ (its interrupt vector number is `qid`). */
  readonly vector: IrqVector | undefined;
  readonly memory: DmaBuffer;
  /** Commands submitted / completed since creation (for statistics). */
  submitted = 0;
  completed = 0;
  /** The SQ head the controller last reported (CQE DW2). */
  sqHead = 0;

  readonly #bar: Bar;
  readonly #sq: Uint32Array;
  /** The CQ ring as words; read only after a fresh load saw the entry's phase flip. */
  readonly #cq: Uint32Array;
  readonly #prp: Uint32Array;
  readonly #cqOffset: number;
  readonly #prpIova: number;
  readonly #sqDoorbell: number;
  readonly #cqDoorbell: number;
  readonly #free: Int32Array;
  #freeTop: number;
  readonly #callbacks: (Completion | undefined)[];
  /** Opcode per CID, for naming a command in errors. */
  readonly opcodes: Uint8Array;
  /** Deadline per CID (performance.now() ms), 0 = none. */
  readonly #deadlines: Float64Array;
  #tail = 0;
  #head = 0;
  #phase = 1;

  constructor(container: VfioSpace, bar: Bar, doorbellStride: number, qid: number, entries: number, mode: CompletionMode, vector: IrqVector | undefined) {
    this.qid = qid;
    this.entries = entries;
    this.depth = entries - 1;
    this.mode = mode;
    this.vector = vector;
    this.#bar = bar;
    const l = layout(entries);
    this.memory = DmaBuffer.allocate(container, l.total);
    this.memory.bytes.fill(0);
    const buf = this.memory.bytes.buffer;
    const base = this.memory.bytes.byteOffset;
    this.#sq = new Uint32Array(buf, base + l.sq, (entries * SQE_BYTES) / 4);
    this.#prp = new Uint32Array(buf, base + l.prp, ((entries - 1) * NVME_PAGE) / 4);
    this.#cqOffset = l.cq;
    this.#cq = new Uint32Array(buf, base + l.cq, (entries * CQE_BYTES) / 4);
    this.#prpIova = Number(this.memory.iova) + l.prp;
    this.#sqDoorbell = 0x1000 + 2 * qid * doorbellStride;
    this.#cqDoorbell = 0x1000 + (2 * qid + 1) * doorbellStride;
    this.#free = new Int32Array(this.depth);
    for (let i = 0; i < this.depth; i++) this.#free[i] = this.depth - 1 - i;
    this.#freeTop = this.depth;
    this.#callbacks = new Array(this.depth).fill(undefined);
    this.opcodes = new Uint8Array(this.depth);
    this.#deadlines = new Float64Array(this.depth);
  }

  /** IOVA of the SQ ring (for Create I/O SQ / ASQ). */
  get sqIova(): bigint {
    return this.memory.iova;
  }
  /** IOVA of the CQ ring (for Create I/O CQ / ACQ). */
  get cqIova(): bigint {
    return this.memory.iova + BigInt(this.#cqOffset);
  }
  /** Commands submitted and not yet completed (timed-out ones included until the device answers). */
  get outstanding(): number {
    return this.depth - this.#freeTop;
  }
  /** True when another command can be submitted now. */
  get hasRoom(): boolean {
    return this.#freeTop > 0;
  }

  /**
   * Writes one submission entry and rings the SQ tail doorbell. The data
   * buffer is described by PRP1/PRP2: one page, two pages, or PRP2 pointing
   * at this CID's PRP list page. `dataIova` must be dword-aligned and
   * `dataBytes` at most {@link PRP_LIST_ENTRIES} pages (the caller checks
   * MDTS). Returns the CID, or -1 when the queue is full.
   */
  submit(opcode: number, nsid: number, cdw10: number, cdw11: number, cdw12: number, cdw13: number,
    dataIova: number, dataBytes: number, done: Completion, deadline = 0): number {
    if (this.#freeTop === 0) return -1;
    const cid = this.#free[--this.#freeTop]!;
    this.#callbacks[cid] = done;
    this.opcodes[cid] = opcode;
    this.#deadlines[cid] = deadline;
    let prp2 = 0;
    if (dataBytes > 0) {
      const first = NVME_PAGE - (dataIova % NVME_PAGE);
      if (dataBytes > first) {
        const rest = dataBytes - first;
        if (rest <= NVME_PAGE) prp2 = dataIova + first;
        else {
          const pages = Math.ceil(rest / NVME_PAGE);
          const list = cid * (NVME_PAGE / 4);
          for (let i = 0, a = dataIova + first; i < pages; i++, a += NVME_PAGE) {
            this.#prp[list + 2 * i] = a % TWO32;
            this.#prp[list + 2 * i + 1] = Math.floor(a / TWO32);
          }
          prp2 = this.#prpIova + cid * NVME_PAGE;
        }
      }
    }
    const sq = this.#sq;
    const e = this.#tail * 16;
    sq[e] = (cid << 16) | opcode; // CDW0: CID, PSDT = 0 (PRPs), FUSE = 0
    sq[e + 1] = nsid;
    sq[e + 2] = 0; sq[e + 3] = 0; sq[e + 4] = 0; sq[e + 5] = 0; // CDW2-3, MPTR
    sq[e + 6] = dataIova % TWO32; sq[e + 7] = Math.floor(dataIova / TWO32); // PRP1
    sq[e + 8] = prp2 % TWO32; sq[e + 9] = Math.floor(prp2 / TWO32); // PRP2
    sq[e + 10] = cdw10; sq[e + 11] = cdw11; sq[e + 12] = cdw12; sq[e + 13] = cdw13;
    sq[e + 14] = 0; sq[e + 15] = 0;
    if (++this.#tail === this.entries) this.#tail = 0;
    this.submitted++;
    // bar.write32 is writel: a write barrier (arm64 dmb oshst), then one store, so the
    // entry and PRP list stores above are visible to the device before the doorbell.
    this.#bar.write32(this.#sqDoorbell, this.#tail);
    return cid;
  }

  /**
   * Reaps every completion entry whose phase bit matches, calls each
   * command's callback, then writes the CQ head doorbell once. Returns the
   * number reaped. The phase word is read with a fresh load each time
   * (DmaBuffer.read32), never through a typed array the JIT may hoist.
   */
  poll(): number {
    const mem = this.memory;
    let n = 0;
    for (;;) {
      const off = this.#cqOffset + this.#head * CQE_BYTES;
      const dw3 = mem.read32(off + 12);
      if (((dw3 >>> 16) & 1) !== this.#phase) break;
      // mem.read32 is load + dma_rmb (arm64 dmb oshld): the loads below are not satisfied
      // before the phase load. They may be plain typed-array loads: the JIT cannot move
      // them across that call, and this slot is not read again until the device rewrites it.
      const w = this.#head * 4;
      const dw0 = this.#cq[w]!;
      this.sqHead = this.#cq[w + 2]! & 0xffff;
      if (++this.#head === this.entries) {
        this.#head = 0;
        this.#phase ^= 1;
      }
      n++;
      const cid = dw3 & 0xffff;
      const done = cid < this.depth ? this.#callbacks[cid] : undefined;
      if (done === undefined) throw new Error(`NVMe queue ${this.qid}: completion for CID ${cid}, which is not outstanding (device or driver bug)`);
      this.#callbacks[cid] = undefined;
      this.#free[this.#freeTop++] = cid;
      this.completed++;
      done((dw3 >>> 17) & 0x7fff, dw0, cid);
    }
    if (n > 0) this.#bar.write32(this.#cqDoorbell, this.#head);
    return n;
  }

  /** Reports commands past their deadline as {@link STATUS_TIMEOUT}; their CIDs stay reserved until the device answers. */
  expire(now: number): void {
    for (let cid = 0; cid < this.depth; cid++) {
      const d = this.#deadlines[cid]!;
      const done = this.#callbacks[cid];
      if (d > 0 && d < now && done !== undefined && done !== LOST) {
        this.#callbacks[cid] = LOST;
        done(STATUS_TIMEOUT, 0, cid);
      }
    }
  }

  /** The CIDs outstanding now. */
  outstandingCids(): number[] {
    const out: number[] = [];
    for (let cid = 0; cid < this.depth; cid++) if (this.#callbacks[cid] !== undefined) out.push(cid);
    return out;
  }

  /** After the queue was deleted: every command still outstanding completes as {@link STATUS_CANCELLED}. */
  cancelAll(): void {
    for (let cid = 0; cid < this.depth; cid++) {
      const done = this.#callbacks[cid];
      if (done === undefined) continue;
      this.#callbacks[cid] = undefined;
      this.#free[this.#freeTop++] = cid;
      done(STATUS_CANCELLED, 0, cid);
    }
  }

  /** Frees the queue memory (after the controller deleted the queue or was disabled). */
  close(): void {
    this.memory.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}
