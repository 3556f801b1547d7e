/**
 * The one table of `bun run bench`: each TypeScript figure beside its
 * baseline from the same run, the ratio, the goal and whether it was met.
 * Pure formatting over the collected numbers (bench/run.ts).
 */

/** Everything bench/run.ts collects (also the shape of bench/results.json). */
export interface BenchResults {
  machine: string;
  date: string;
  native?: { c: Record<string, number>; ts: Record<string, number> };
  guest?: {
    microC?: Record<string, number>;
    microTs?: Record<string, number>;
    nvme?: Record<string, { c?: IoResult; ts?: IoResult; kernel?: IoResult; kernelError?: string }>;
    kernelError?: string;
  };
  guestError?: string;
  guestKernel?: string;
  rows?: Row[];
}

export interface IoResult { iops: number; p50_us: number; p99_us: number; cpu_us_per_io: number; ios: number; thread_cpu_ms?: Record<string, number>; runs?: number[] }

/** One line of the table. */
export interface Row {
  section: string;
  name: string;
  unit: string;
  baseline?: number;
  ts?: number;
  /** ts / baseline (or ts - baseline for "ns over C" goals). */
  ratio?: number;
  goal: string;
  met?: boolean;
  extra?: string;
}

type Goal = { kind: "ratio-max"; max: number } | { kind: "over-max"; ns: number } | { kind: "ratio-min"; min: number } | { kind: "none" };

function row(section: string, name: string, unit: string, baseline: number | undefined, ts: number | undefined, goal: Goal, extra?: string): Row {
  const r: Row = { section, name, unit, baseline, ts, goal: "-", extra };
  if (baseline === undefined || ts === undefined || !Number.isFinite(baseline) || !Number.isFinite(ts)) return r;
  if (goal.kind === "over-max") {
    r.ratio = ts / baseline;
    r.goal = `<= C + ${goal.ns} ns`;
    r.met = ts - baseline <= goal.ns;
  } else {
    r.ratio = ts / baseline;
    if (goal.kind === "ratio-max") {
      r.goal = `<= ${goal.max}x`;
      r.met = r.ratio <= goal.max;
    } else if (goal.kind === "ratio-min") {
      r.goal = `>= ${+goal.min.toFixed(2)}x`;
      r.met = r.ratio >= goal.min;
    }
  }
  return r;
}

const perSecond = (ns: number | undefined) => (ns === undefined ? undefined : 1e9 / ns);

/** Builds the rows and the printed text. */
export function renderTable(res: BenchResults): { rows: Row[]; text: string } {
  const rows: Row[] = [];
  const n = res.native;
  const N = "native (host, no VFIO)";
  rows.push(row(N, "ioctl (FIONBIO on /dev/zero)", "ns", n?.c.ioctl, n?.ts.ioctl, { kind: "ratio-max", max: 1.1 }));
  rows.push(row(N, "pread 4 bytes (/dev/zero)", "ns", n?.c.pread32, n?.ts.pread32, { kind: "ratio-max", max: 1.1 }));
  rows.push(row(N, "mapped load32 (MappedMemory.read32)", "ns", n?.c.load32, n?.ts.load32, { kind: "over-max", ns: 5 }));
  rows.push(row(N, "mapped store32 (MappedMemory.write32)", "ns", n?.c.store32, n?.ts.store32, { kind: "over-max", ns: 5 }));
  rows.push(row(N, "eventfd wake median (C poll vs Bun stream)", "us", n?.c["wake-median"], n?.ts["wake-median"], { kind: "ratio-max", max: 1.5 }));
  rows.push(row(N, "eventfd wake p99", "us", n?.c["wake-p99"], n?.ts["wake-p99"], { kind: "none" }));

  const g = res.guest;
  const c = g?.microC;
  const t = g?.microTs;
  const G = "guest (QEMU TCG), VFIO on nvme";
  rows.push(row(G, "VFIO_DEVICE_GET_REGION_INFO (+caps) per second", "1/s", perSecond(c?.["region-info"]), perSecond(t?.["region-info"]), { kind: "ratio-min", min: 1 / 1.1 }));
  rows.push(row(G, "VFIO_DEVICE_GET_IRQ_INFO per second", "1/s", perSecond(c?.["irq-info"]), perSecond(t?.["irq-info"]), { kind: "ratio-min", min: 1 / 1.1 }));
  rows.push(row(G, "trapped read32 (pread on the device fd)", "ns", c?.["trapped-read32"], t?.["trapped-read32"], { kind: "ratio-max", max: 1.1 }));
  rows.push(row(G, "register BAR0 read32 (mmap, traps to QEMU)", "ns", c?.["bar0-read32"], t?.["bar0-read32"], { kind: "over-max", ns: 5 }));
  rows.push(row(G, "register BAR0 write32", "ns", c?.["bar0-write32"], t?.["bar0-write32"], { kind: "over-max", ns: 5 }));
  rows.push(row(G, "CMB BAR2 read32 (cmb_size_mb)", "ns", c?.["cmb-read32"], t?.["cmb-read32"], { kind: "over-max", ns: 5 }));
  rows.push(row(G, "CMB BAR2 write32", "ns", c?.["cmb-write32"], t?.["cmb-write32"], { kind: "over-max", ns: 5 }));
  rows.push(row(G, "DMA map 1 GiB in 2 MiB chunks", "ms", c?.["dma-map-1g"], t?.["dma-map-1g"], { kind: "ratio-max", max: 1.1 }));
  rows.push(row(G, "DMA unmap 1 GiB in 2 MiB chunks", "ms", c?.["dma-unmap-1g"], t?.["dma-unmap-1g"], { kind: "ratio-max", max: 1.1 }));
  rows.push(row(G, "software-triggered vector wake median", "us", c?.["wake-median"], t?.["wake-median"], { kind: "ratio-max", max: 1.5 }));
  rows.push(row(G, "software-triggered vector wake p99", "us", c?.["wake-p99"], t?.["wake-p99"], { kind: "none" }));

  const io = g?.nvme ?? {};
  const D = "guest (QEMU TCG), NVMe 4 KiB random";
  for (const [key, r] of Object.entries(io)) {
    const detail = (x: IoResult | undefined) => (x ? `p50 ${x.p50_us.toFixed(0)} p99 ${x.p99_us.toFixed(0)} us, CPU ${x.cpu_us_per_io.toFixed(1)} us/IO${x.runs && x.runs.length > 1 ? `, IOPS runs ${x.runs.join("/")}` : ""}` : "-");
    const threads = r.ts?.thread_cpu_ms ? ` [TS CPU ms by thread: ${Object.entries(r.ts.thread_cpu_ms).map(([k, v]) => `${k} ${v}`).join(", ")}]` : "";
    rows.push(row(D, `${key}: TS vs C driver`, "IOPS", r.c?.iops, r.ts?.iops, { kind: "ratio-min", min: 0.9 }, `TS ${detail(r.ts)} | C ${detail(r.c)}${threads}`));
    rows.push(row(D, `${key}: TS vs kernel (fio io_uring${key.includes("polled") ? " hipri" : ""})`, "IOPS", r.kernel?.iops, r.ts?.iops, { kind: "ratio-min", min: 1 },
      r.kernel ? `kernel ${detail(r.kernel)}` : `kernel: ${r.kernelError ?? g?.kernelError ?? "not measured"}`));
  }

  const num = (x: number | undefined) => (x === undefined ? "-" : x >= 1000 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const header = ["measurement", "unit", "baseline", "TypeScript", "ratio", "goal", "met"];
  const table: string[][] = [];
  let section = "";
  const lines: string[] = [`bun-vfio benchmarks, ${res.date}`, `machine: ${res.machine}${res.guestKernel ? `; guest kernel ${res.guestKernel} under QEMU TCG (emulated CPU: compare only within this run)` : ""}`];
  if (res.guestError) lines.push(`guest: ${res.guestError}`);
  const body: { section?: string; cells?: string[]; extra?: string }[] = [];
  for (const r of rows) {
    if (r.section !== section) body.push({ section: (section = r.section) });
    const cells = [r.name, r.unit, num(r.baseline), num(r.ts), r.ratio === undefined ? "-" : `${r.ratio.toFixed(2)}x`, r.goal, r.met === undefined ? "-" : r.met ? "yes" : "NO"];
    table.push(cells);
    body.push({ cells, extra: r.extra });
  }
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((c) => c[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  lines.push(fmt(header));
  for (const b of body) {
    if (b.section) lines.push(`-- ${b.section}`);
    else {
      lines.push(fmt(b.cells!));
      if (b.extra) lines.push(`     ${b.extra}`);
    }
  }
  lines.push("baseline: C doing the same system calls on the same device in the same run (NVMe: the C userspace driver, or the kernel's nvme driver with fio).");
  return { rows, text: lines.join("\n") };
}
