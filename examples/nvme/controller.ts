/**
 * A small NVMe driver on bun-vfio: controller reset and enable per the NVMe
 * base specification (CC.EN / CSTS.RDY bounded by CAP.TO), an admin queue
 * pair, Identify Controller and Namespace, Set Features Number of Queues,
 * I/O queue pairs each with its CQ on its own MSI-X vector, read / write /
 * flush with PRP lists up to MDTS, polled or interrupt-driven completion,
 * abort of outstanding commands and a CC.SHN shutdown on close.
 *
 * ```ts
 * await using nvme = await NvmeController.open("0000:01:00.0");
 * using buf = nvme.allocate(4096);
 * await nvme.read(0n, 8, buf);             // LBAs 0..7 into buf
 * ```
 */
import { DmaBuffer, openVfio, type Bar, type IrqVectors, type PciDevice, type VfioSpace } from "bun-vfio";
import { badRequest, cancelled, NvmeCommandError, timedOut } from "./errors.ts";
import { NVME_PAGE, PRP_LIST_ENTRIES, QueuePair, STATUS_CANCELLED, STATUS_TIMEOUT, type CompletionMode } from "./queue-pair.ts";
import { ADMIN, CC, CNS, CSTS, FEATURE, NVM, REG } from "./spec.ts";

/** Options of {@link NvmeController.open}. */
export interface NvmeOptions {
  /** Completion mode of each I/O queue pair, in queue order (default `["interrupt", "polled"]`). */
  queues?: CompletionMode[];
  /** Entries per I/O queue, at most CAP.MQES + 1 (default 256; depth is entries - 1). */
  queueEntries?: number;
  /** Namespace to use (default 1). */
  nsid?: number;
  /** Bound on each command (default 10 s; TCG guests are slow). */
  commandTimeoutMs?: number;
}

/** What Identify Controller and Identify Namespace said. */
export interface NvmeIdentity {
  vendorId: number;
  serial: string;
  model: string;
  firmware: string;
  /** Maximum data transfer size in bytes (0 in the data structure = no limit, reported here as Infinity). */
  mdtsBytes: number;
  /** Namespaces (NN). */
  namespaces: number;
  /** Abort command limit (ACL + 1). */
  abortLimit: number;
  /** NVMe version from VS, "1.4.0". */
  version: string;
}

/** The namespace in use. */
export interface NvmeNamespace {
  nsid: number;
  /** Size in logical blocks (NSZE). */
  blocks: bigint;
  /** Logical block size in bytes (2^LBADS of the format FLBAS selects). */
  blockSize: number;
  /** Index of the LBA format in use and its metadata bytes. */
  lbaFormat: number;
  metadataBytes: number;
}

/** Per-request options. */
export interface IoOptions {
  /** I/O queue index (0-based, default: the first queue with `mode`, else queue 0). */
  queue?: number;
  /** Pick the first queue with this completion mode. */
  mode?: CompletionMode;
}

const ADMIN_ENTRIES = 32;
const OPNAMES: Record<number, string> = { [NVM.READ]: "Read", [NVM.WRITE]: "Write", [NVM.FLUSH]: "Flush" };
const ADMIN_NAMES: Record<number, string> = {
  [ADMIN.DELETE_SQ]: "Delete I/O SQ", [ADMIN.CREATE_SQ]: "Create I/O SQ", [ADMIN.DELETE_CQ]: "Delete I/O CQ",
  [ADMIN.CREATE_CQ]: "Create I/O CQ", [ADMIN.IDENTIFY]: "Identify", [ADMIN.ABORT]: "Abort",
  [ADMIN.SET_FEATURES]: "Set Features", [ADMIN.GET_FEATURES]: "Get Features",
};

/** Polls `cond` every millisecond until it holds; throws ETIMEDOUT after `ms`. */
async function waitUntil(what: string, ms: number, path: string, cond: () => boolean): Promise<void> {
  for (const end = performance.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 1))) {
    if (performance.now() > end) throw timedOut(what, ms, path, "The controller did not change state within CAP.TO; check the kernel log and reset the device.");
  }
}

/** An NVMe controller driven through VFIO; owns its IOMMU backend (openVfio) and device when opened by BDF. */
export class NvmeController implements AsyncDisposable {
  readonly bdf: string;
  /** The IOMMU backend's DMA space (iommufd or the type1 container, whichever openVfio() chose). */
  readonly container: VfioSpace;
  readonly device: PciDevice;
  readonly bar: Bar;
  readonly identity: NvmeIdentity;
  readonly namespace: NvmeNamespace;
  readonly admin: QueuePair;
  readonly queues: QueuePair[];
  /** Largest transfer this driver sends: MDTS, capped at one PRP list. */
  readonly maxTransferBytes: number;
  /** CAP.TO in ms: the bound on enable, disable and shutdown. */
  readonly readyTimeoutMs: number;
  readonly commandTimeoutMs: number;
  /** CC and CSTS as read from BAR0 after the shutdown in close() (vfio-pci resets the device on the next open, so read them here). */
  shutdownRegisters: { cc: number; csts: number } | undefined;

  readonly #vectors: IrqVectors;
  readonly #scratch: DmaBuffer;
  readonly #pumps = new Set<QueuePair>();
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  private constructor(init: {
    bdf: string; container: VfioSpace; device: PciDevice; bar: Bar; vectors: IrqVectors; scratch: DmaBuffer;
    admin: QueuePair; readyTimeoutMs: number; commandTimeoutMs: number;
  }) {
    this.bdf = init.bdf;
    this.container = init.container;
    this.device = init.device;
    this.bar = init.bar;
    this.#vectors = init.vectors;
    this.#scratch = init.scratch;
    this.admin = init.admin;
    this.readyTimeoutMs = init.readyTimeoutMs;
    this.commandTimeoutMs = init.commandTimeoutMs;
    this.queues = [];
    this.identity = undefined as unknown as NvmeIdentity;
    this.namespace = undefined as unknown as NvmeNamespace;
    this.maxTransferBytes = 0;
  }

  /**
   * Opens the controller at `bdf` (bound to vfio-pci): IOMMU backend,
   * device, BAR0, MSI-X vectors (one per CQ), then resets and enables the
   * controller, identifies it and creates the I/O queues. On failure
   * everything opened so far is closed again.
   */
  static async open(bdf: string, options: NvmeOptions = {}): Promise<NvmeController> {
    const modes = options.queues ?? ["interrupt", "polled"];
    const container = openVfio();
    let ctrl: NvmeController | undefined;
    try {
      const device = container.openPciDevice(bdf);
      device.enableMemory();
      device.enableBusMaster();
      const bar = device.bar(0);
      const cap = bar.read64(REG.CAP);
      const readyTimeoutMs = Math.max(500, Number((cap >> 24n) & 0xffn) * 500);
      const stride = 4 << Number((cap >> 32n) & 0xfn);
      const mpsMin = 12 + Number((cap >> 48n) & 0xfn);
      if (mpsMin > 12) throw badRequest("open", `CAP.MPSMIN is ${1 << mpsMin} bytes`, "This driver uses 4 KiB controller pages only.", bdf);
      const vectors = device.msix.enable(1 + modes.length);
      const admin = new QueuePair(container, bar, stride, 0, ADMIN_ENTRIES, "polled", vectors[0]);
      const scratch = DmaBuffer.allocate(container, NVME_PAGE);
      ctrl = new NvmeController({ bdf, container, device, bar, vectors, scratch, admin, readyTimeoutMs, commandTimeoutMs: options.commandTimeoutMs ?? 10_000 });
      await ctrl.#start(cap, modes, options);
      return ctrl;
    } catch (err) {
      if (ctrl) await ctrl.close().catch(() => {});
      else container.close();
      throw err;
    }
  }

  async #start(cap: bigint, modes: CompletionMode[], options: NvmeOptions): Promise<void> {
    await this.#disable();
    const bar = this.bar;
    bar.write32(REG.AQA, ((ADMIN_ENTRIES - 1) << 16) | (ADMIN_ENTRIES - 1));
    bar.write64(REG.ASQ, this.admin.sqIova);
    bar.write64(REG.ACQ, this.admin.cqIova);
    bar.write32(REG.CC, CC.ENTRY_SIZES | CC.mps(12) | CC.CSS_NVM | CC.EN);
    await waitUntil("NVMe enable (CSTS.RDY = 1)", this.readyTimeoutMs, this.bdf, () => this.#ready(1));

    const idc = await this.#identify(CNS.CONTROLLER, 0);
    const text = (from: number, to: number) => new TextDecoder().decode(idc.subarray(from, to)).replace(/\0/g, "").trim();
    const dv = new DataView(idc.buffer, idc.byteOffset, idc.byteLength);
    const mdts = idc[77]!;
    const vs = bar.read32(REG.VS);
    const mpsMinBytes = 1 << (12 + Number((cap >> 48n) & 0xfn));
    const identity: NvmeIdentity = {
      vendorId: dv.getUint16(0, true),
      serial: text(4, 24), model: text(24, 64), firmware: text(64, 72),
      mdtsBytes: mdts === 0 ? Infinity : mpsMinBytes * 2 ** mdts,
      namespaces: dv.getUint32(516, true),
      abortLimit: idc[258]! + 1,
      version: `${vs >>> 16}.${(vs >>> 8) & 0xff}.${vs & 0xff}`,
    };
    const nsid = options.nsid ?? 1;
    if (nsid < 1 || nsid > identity.namespaces) throw badRequest("open", `namespace ${nsid} does not exist (NN = ${identity.namespaces})`, "Pass an nsid from 1 to NN.", this.bdf);
    const idn = await this.#identify(CNS.NAMESPACE, nsid);
    const nv = new DataView(idn.buffer, idn.byteOffset, idn.byteLength);
    const flbas = idn[26]!;
    const lbaFormat = (flbas & 0xf) | (((flbas >>> 5) & 3) << 4);
    const lbaf = nv.getUint32(128 + 4 * lbaFormat, true);
    const namespace: NvmeNamespace = { nsid, blocks: nv.getBigUint64(0, true), blockSize: 2 ** ((lbaf >>> 16) & 0xff), lbaFormat, metadataBytes: lbaf & 0xffff };
    if (namespace.blocks === 0n) throw badRequest("open", `namespace ${nsid} is inactive (NSZE = 0)`, "Attach or format the namespace first.", this.bdf);
    Object.assign(this, { identity, namespace, maxTransferBytes: Math.min(identity.mdtsBytes, PRP_LIST_ENTRIES * NVME_PAGE) });

    // Set Features, Number of Queues (0-based counts); DW0 of the completion says what was granted.
    const want = modes.length - 1;
    const granted = await this.adminCommand(ADMIN.SET_FEATURES, 0, FEATURE.NUMBER_OF_QUEUES, (want << 16) | want);
    const n = Math.min((granted & 0xffff) + 1, (granted >>> 16) + 1);
    if (n < modes.length) throw badRequest("open", `the controller grants ${n} I/O queue pairs, ${modes.length} asked for`, "Ask for fewer queues.", this.bdf);

    const entries = Math.min(options.queueEntries ?? 256, Number(cap & 0xffffn) + 1);
    const stride = 4 << Number((cap >> 32n) & 0xfn);
    for (let i = 0; i < modes.length; i++) {
      const qid = i + 1;
      const q = new QueuePair(this.container, bar, stride, qid, entries, modes[i]!, this.#vectors[qid]);
      this.queues.push(q);
      const ien = modes[i] === "interrupt" ? 2 : 0;
      // Create I/O CQ: QSIZE | QID; IV (vector = qid) | IEN | PC. Then the SQ bound to it.
      await this.adminCommand(ADMIN.CREATE_CQ, 0, ((entries - 1) << 16) | qid, (qid << 16) | ien | 1, 0, Number(q.cqIova));
      await this.adminCommand(ADMIN.CREATE_SQ, 0, ((entries - 1) << 16) | qid, (qid << 16) | 1, 0, Number(q.sqIova));
    }
    this.#watchdog = setInterval(() => this.#expire(), 100);
    this.#watchdog.unref();
  }

  #ready(want: number): boolean {
    return (this.bar.read32(REG.CSTS) & CSTS.RDY) === want;
  }

  /** CC.EN 1 -> 0: wait out a pending enable first (the spec forbids clearing EN while RDY is still 0 after setting it). */
  async #disable(): Promise<void> {
    const cc = this.bar.read32(REG.CC);
    if ((cc & CC.EN) && !this.#ready(1)) await waitUntil("NVMe enable to settle (CSTS.RDY = 1) before reset", this.readyTimeoutMs, this.bdf, () => this.#ready(1));
    this.bar.write32(REG.CC, cc & ~CC.EN);
    await waitUntil("NVMe disable (CSTS.RDY = 0)", this.readyTimeoutMs, this.bdf, () => this.#ready(0));
  }

  async #identify(cns: number, nsid: number): Promise<Uint8Array> {
    this.#scratch.bytes.fill(0);
    await this.adminCommand(ADMIN.IDENTIFY, nsid, cns, 0, 0, Number(this.#scratch.iova), NVME_PAGE);
    return this.#scratch.read(0, NVME_PAGE);
  }

  /**
   * Sends one admin command and polls the admin CQ until it completes
   * (bounded by the command timeout). Resolves with the completion's DW0;
   * rejects with an {@link NvmeCommandError} naming the command's SCT/SC.
   */
  async adminCommand(opcode: number, nsid: number, cdw10: number, cdw11 = 0, cdw12 = 0, prp1 = 0, dataBytes = 0): Promise<number> {
    const name = ADMIN_NAMES[opcode] ?? `admin opcode 0x${opcode.toString(16)}`;
    let status: number | undefined;
    let result = 0;
    const cid = this.admin.submit(opcode, nsid, cdw10, cdw11, cdw12, 0, prp1, dataBytes, (s, dw0) => { status = s; result = dw0; });
    if (cid < 0) throw badRequest(name, "the admin queue is full", "Wait for admin commands in flight.", this.bdf);
    const end = performance.now() + this.commandTimeoutMs;
    for (let spins = 0; this.admin.poll() === 0 || status === undefined; spins++) {
      if (status !== undefined) break;
      if (performance.now() > end) {
        this.admin.expire(Infinity);
        throw timedOut(`NVMe ${name} (admin queue, CID ${cid})`, this.commandTimeoutMs, this.bdf, "The controller did not complete an admin command; it may be hung (reset it).");
      }
      if (spins > 100) await new Promise((r) => setTimeout(r, 0));
    }
    if (status !== 0) throw new NvmeCommandError(name, 0, cid, status!, this.bdf);
    return result;
  }

  /** Allocates DMA memory in the controller's container (page-aligned; close it or `using`). */
  allocate(bytes: number): DmaBuffer {
    return DmaBuffer.allocate(this.container, bytes);
  }

  /** Picks the queue for a request. */
  queueFor(o: IoOptions = {}): QueuePair {
    if (o.queue !== undefined) {
      const q = this.queues[o.queue];
      if (!q) throw badRequest("I/O", `queue ${o.queue} does not exist (${this.queues.length} I/O queues)`, `Use a queue from 0 to ${this.queues.length - 1}.`, this.bdf);
      return q;
    }
    return (o.mode ? this.queues.find((q) => q.mode === o.mode) : undefined) ?? this.queues[0]!;
  }

  /**
   * Checks a data request against the namespace and MDTS before anything
   * reaches the device; returns the transfer's IOVA (as a number) and length.
   * @throws VfioError EINVAL naming what is wrong
   */
  check(command: string, lba: bigint, blocks: number, buf: DmaBuffer, offset: number): { iova: number; bytes: number } {
    const ns = this.namespace;
    const p = this.bdf;
    if (this.#closed) throw badRequest(command, "the controller is closed", "Open it again.", p);
    if (!Number.isInteger(blocks) || blocks < 1) throw badRequest(command, `block count ${blocks} is not a positive integer`, "Transfer at least one logical block.", p);
    if (lba < 0n || lba + BigInt(blocks) > ns.blocks) {
      throw badRequest(command, `LBAs ${lba}..${lba + BigInt(blocks) - 1n} are out of range (namespace ${ns.nsid} has ${ns.blocks} blocks)`, "Keep lba + blocks within the namespace size.", p);
    }
    const bytes = blocks * ns.blockSize;
    if (bytes > this.maxTransferBytes) {
      throw badRequest(command, `${bytes} bytes exceed the maximum transfer of ${this.maxTransferBytes} bytes (MDTS)`, "Split the request into transfers of at most maxTransferBytes.", p);
    }
    if (buf.space !== this.container) throw badRequest(command, "the buffer is mapped in another container", "Allocate it with nvme.allocate().", p);
    if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0) {
      throw badRequest(command, `buffer offset ${offset} is misaligned`, "PRP entries need dword-aligned data: use an offset that is a multiple of 4.", p);
    }
    if (offset + bytes > buf.size) throw badRequest(command, `offset ${offset} + ${bytes} bytes exceed the ${buf.size}-byte buffer`, "Use a larger buffer or fewer blocks.", p);
    return { iova: Number(buf.iova) + offset, bytes };
  }

  /** Reads `blocks` logical blocks at `lba` into `buf` at `offset` (NVM Read, opcode 0x02). */
  read(lba: bigint, blocks: number, buf: DmaBuffer, offset = 0, o: IoOptions = {}): Promise<void> {
    return this.#io(NVM.READ, lba, blocks, buf, offset, o);
  }

  /** Writes `blocks` logical blocks at `lba` from `buf` at `offset` (NVM Write, opcode 0x01). */
  write(lba: bigint, blocks: number, buf: DmaBuffer, offset = 0, o: IoOptions = {}): Promise<void> {
    return this.#io(NVM.WRITE, lba, blocks, buf, offset, o);
  }

  /** Commits the namespace's volatile write cache (NVM Flush, opcode 0x00). */
  flush(o: IoOptions = {}): Promise<void> {
    const q = this.queueFor(o);
    return this.issueUnchecked(q, NVM.FLUSH, 0, 0, 0, 0, 0);
  }

  #io(opcode: number, lba: bigint, blocks: number, buf: DmaBuffer, offset: number, o: IoOptions): Promise<void> {
    let t: { iova: number; bytes: number };
    try {
      t = this.check(OPNAMES[opcode]!, lba, blocks, buf, offset);
    } catch (e) {
      return Promise.reject(e);
    }
    const q = this.queueFor(o);
    return this.issueUnchecked(q, opcode, Number(lba & 0xffffffffn), Number(lba >> 32n), blocks - 1, t.iova, t.bytes);
  }

  /**
   * Submits one NVM command on `q` without the driver's request checks and
   * waits for it the queue's way (spinning on a polled queue, on the vector
   * otherwise). For tests of the device's own status reporting; use
   * read/write/flush otherwise.
   */
  issueUnchecked(q: QueuePair, opcode: number, cdw10: number, cdw11: number, cdw12: number, iova: number, bytes: number): Promise<void> {
    const name = OPNAMES[opcode] ?? `opcode 0x${opcode.toString(16)}`;
    return new Promise<void>((resolve, reject) => {
      let cid = -1;
      let finished = false;
      const done = (status: number): void => {
        finished = true;
        if (status === 0) resolve();
        else if (status === STATUS_TIMEOUT) reject(timedOut(`NVMe ${name} (queue ${q.qid}, CID ${cid})`, this.commandTimeoutMs, this.bdf, "The command stays outstanding; closing the controller aborts it."));
        else if (status === STATUS_CANCELLED) reject(cancelled(name, q.qid, cid, this.bdf, "the queue was deleted before the command completed"));
        else reject(new NvmeCommandError(name, q.qid, cid, status, this.bdf));
      };
      cid = q.submit(opcode, this.namespace.nsid, cdw10, cdw11, cdw12, 0, iova, bytes, done, performance.now() + this.commandTimeoutMs);
      if (cid < 0) {
        reject(badRequest(name, `queue ${q.qid} is full (${q.depth} commands outstanding)`, "Wait for completions, or use a deeper queue.", this.bdf));
        return;
      }
      if (q.mode === "polled") this.#spin(q, () => finished);
      else this.#pump(q);
    });
  }

  /** Polled mode: spins on the CQ until `isDone`; the deadline check runs every 1024 empty polls. */
  #spin(q: QueuePair, isDone: () => boolean): void {
    for (let spins = 0; !isDone(); spins++) {
      if (q.poll() === 0 && (spins & 1023) === 1023) q.expire(performance.now());
    }
  }

  /** Interrupt mode: one loop per queue waits on its vector and reaps, while commands are outstanding. */
  #pump(q: QueuePair): void {
    if (this.#pumps.has(q) || !q.vector) return;
    this.#pumps.add(q);
    void (async () => {
      try {
        // Reap only after an interrupt: every posted entry raises one, and the
        // eventfd keeps the count, so a completion never waits for a later wake.
        while (q.outstanding > 0 && !this.#closed) {
          await q.vector!.next();
          q.poll();
        }
      } catch {
        // the vector closed: close() cancels what is left
      } finally {
        this.#pumps.delete(q);
      }
    })();
  }

  /** Watchdog: fails commands past their deadline, so no wait is unbounded. */
  #expire(): void {
    const now = performance.now();
    for (const q of this.queues) q.expire(now);
  }

  /**
   * Aborts outstanding I/O (Abort, up to the abort limit at a time), deletes
   * the I/O queues, shuts the controller down (CC.SHN = normal, until
   * CSTS.SHST = complete, bounded), disables it, then frees the DMA memory,
   * the vectors, the device and its IOMMU backend. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchdog);
    const errors: unknown[] = [];
    let shutDown = false;
    const attempt = async (f: () => Promise<unknown>) => { try { await f(); } catch (e) { errors.push(e); } };
    if (this.#ready(1) && this.identity) {
      for (const q of this.queues) {
        q.poll();
        for (const cid of q.outstandingCids().slice(0, this.identity.abortLimit)) {
          await attempt(() => this.adminCommand(ADMIN.ABORT, 0, (cid << 16) | q.qid));
        }
        q.poll();
      }
      for (const q of [...this.queues].reverse()) {
        await attempt(() => this.adminCommand(ADMIN.DELETE_SQ, 0, q.qid));
        await attempt(() => this.adminCommand(ADMIN.DELETE_CQ, 0, q.qid));
      }
      const cc = this.bar.read32(REG.CC);
      this.bar.write32(REG.CC, (cc & ~CC.SHN_MASK) | CC.SHN_NORMAL);
      await attempt(async () => {
        await waitUntil("NVMe shutdown (CSTS.SHST = complete)", this.readyTimeoutMs, this.bdf,
          () => (this.bar.read32(REG.CSTS) & CSTS.SHST_MASK) === CSTS.SHST_COMPLETE);
        shutDown = true;
      });
      this.shutdownRegisters = { cc: this.bar.read32(REG.CC), csts: this.bar.read32(REG.CSTS) };
    }
    // A shut-down controller stays enabled (as Linux leaves it); the next open() resets it.
    if (!shutDown) await attempt(() => this.#disable());
    for (const q of this.queues) q.cancelAll();
    this.admin.cancelAll();
    for (const q of this.queues) q.close();
    this.admin.close();
    this.#scratch.close();
    this.#vectors[Symbol.dispose]();
    this.device.close();
    this.container.close();
    if (errors.length) throw errors[0];
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
