/**
 * MSI isolation evidence for the mmap decision (DESIGN.md, "The mmap
 * decision"): is it safe to let userspace write a device's MSI-X table?
 * Only if interrupt remapping (or the ARM ITS) decides what the device's
 * MSIs can reach. Reads /sys and /proc under `root`; never throws for a
 * missing or unreadable file, which becomes an evidence line instead.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { invalidArgument } from "../support/errors.ts";
import { isolationVerdict, type IsolationVerdict } from "../mmap-plan/index.ts";

/** Where the evidence is read from. */
export interface IsolationEvidenceSources {
  /** Directory standing in for `/` (tests point it at a fake tree). Default `"/"`. */
  root?: string;
}

/** What we know about the VFIO container the device's group belongs to, if any. */
export interface IsolationContainerState {
  /**
   * The IOMMU type set with VFIO_SET_IOMMU, `"iommufd"` for a device bound
   * to iommufd through its cdev, or undefined before either.
   */
  iommuType: "type1" | "type1v2" | "noiommu" | "iommufd" | undefined;
  /** The device's isolation check has run: a group attached to a type1 container, or a cdev bound to iommufd (VFIO_DEVICE_BIND_IOMMUFD). */
  attached: boolean;
}

/** The parameter that lets each backend skip its MSI isolation check (type1 at VFIO_SET_IOMMU, iommufd at VFIO_DEVICE_BIND_IOMMUFD). */
const ALLOW_UNSAFE = {
  type1: "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
  iommufd: "/sys/module/iommufd/parameters/allow_unsafe_interrupts",
} as const;
const PROC_INTERRUPTS = "/proc/interrupts";
const IOMMU_CLASS = "/sys/class/iommu";
const DEVICE_TREE = "/sys/firmware/devicetree/base";
const LISTED_CHIPS = 3;

/** Remapped interrupt chips: Intel and AMD name them `IR-...` (`IR-PCI-MSIX-0000:00:04.0`, `IR-IO-APIC`). */
function isRemappedChip(chip: string): boolean {
  return chip.startsWith("IR-");
}

/** ARM GICv3 ITS MSI domains (`ITS-MSI`, `ITS-pMSI`, `GICv3-ITS`, per-device `ITS-PCI-MSIX-...`) isolate MSIs per device. */
function isItsChip(chip: string): boolean {
  return /(^|-)ITS(-|$)/.test(chip);
}

/**
 * The distinct interrupt chip names in `/proc/interrupts`, sorted into
 * remapped (`IR-` prefix, Intel/AMD interrupt remapping), MSI domains that
 * isolate (arm64 ITS) and the rest. Lines whose first column is not an IRQ
 * number (NMI, LOC, ...) carry descriptions, not chips, and are skipped.
 */
export function parseInterruptChips(procInterrupts: string): { remapped: string[]; msiDomains: string[]; other: string[] } {
  const chips = new Set<string>();
  for (const line of procInterrupts.split("\n")) {
    const match = /^\s*(\d+):\s*(.*)$/.exec(line);
    if (!match) continue;
    // After the IRQ number come one count per CPU, then the chip name.
    const chip = match[2]!.split(/\s+/).find((token) => token !== "" && !/^\d+$/.test(token));
    if (chip) chips.add(chip);
  }
  const all = [...chips];
  return {
    remapped: all.filter(isRemappedChip),
    msiDomains: all.filter((c) => !isRemappedChip(c) && isItsChip(c)),
    other: all.filter((c) => !isRemappedChip(c) && !isItsChip(c)),
  };
}

/**
 * Bit 3 (IR, interrupt remapping support) of the Intel DMAR extended
 * capability register, as printed in `/sys/class/iommu/dmar*\/intel-iommu/ecap`
 * (hex, with or without `0x`). Set means the hardware can remap, not that
 * remapping is enabled.
 * @throws VfioError (EINVAL) when the text is not a hex number.
 */
export function dmarInterruptRemapCapable(ecapHex: string): boolean {
  const text = ecapHex.trim().replace(/^0x/i, "");
  if (!/^[0-9a-f]+$/i.test(text)) {
    throw invalidArgument("dmarInterruptRemapCapable", `ecap "${ecapHex.trim()}" is not hex`, "Pass the contents of /sys/class/iommu/dmar*/intel-iommu/ecap.");
  }
  return (BigInt(`0x${text}`) & 8n) !== 0n;
}

function readText(root: string, path: string): string | undefined {
  try {
    return readFileSync(join(root, path), "utf8");
  } catch {
    return undefined;
  }
}

function chipList(names: string[]): string {
  const shown = names.slice(0, LISTED_CHIPS).join(", ");
  return names.length > LISTED_CHIPS ? `${shown}, ...` : shown;
}

/** A backend's allow_unsafe_interrupts as "Y"/"N", or undefined when its module is not loaded or the file is unreadable. */
function readAllowUnsafe(root: string, backend: keyof typeof ALLOW_UNSAFE, evidence: string[]): "Y" | "N" | undefined {
  const path = ALLOW_UNSAFE[backend];
  const text = readText(root, path)?.trim();
  if (text === undefined) {
    evidence.push(`${path}: not readable (${backend === "type1" ? "vfio_iommu_type1" : "iommufd"} not loaded?)`);
    return undefined;
  }
  const value = /^(Y|1)$/i.test(text) ? "Y" : /^(N|0)$/i.test(text) ? "N" : undefined;
  evidence.push(value ? `${path} = ${value}` : `${path} = ${text} (not understood)`);
  return value;
}

/** True when /proc/interrupts shows remapped chips or ITS MSI domains. */
function observeInterrupts(root: string, evidence: string[]): boolean {
  const text = readText(root, PROC_INTERRUPTS);
  if (text === undefined) {
    evidence.push(`${PROC_INTERRUPTS}: not readable`);
    return false;
  }
  const { remapped, msiDomains, other } = parseInterruptChips(text);
  if (remapped.length) evidence.push(`${PROC_INTERRUPTS}: ${remapped.length} IR- chips (${chipList(remapped)})`);
  if (msiDomains.length) evidence.push(`${PROC_INTERRUPTS}: ${msiDomains.length} ITS MSI domains (${chipList(msiDomains)})`);
  const v2m = other.filter((c) => c.startsWith("GICv2m-"));
  if (v2m.length) evidence.push(`${PROC_INTERRUPTS}: ${v2m.length} GICv2m MSI domains (${chipList(v2m)}): not isolating`);
  if (!remapped.length && !msiDomains.length && !v2m.length) {
    const seen = other.length ? `; chips seen: ${chipList(other)}` : "";
    evidence.push(`${PROC_INTERRUPTS}: no IR- or ITS chips${seen}`);
  }
  return remapped.length + msiDomains.length > 0;
}

/** True when some Intel DMAR unit advertises the IR bit. */
function dmarCapable(root: string, evidence: string[]): boolean {
  let units: string[];
  try {
    units = readdirSync(join(root, IOMMU_CLASS)).filter((name) => name.startsWith("dmar")).sort();
  } catch {
    evidence.push(`${IOMMU_CLASS}: not readable`);
    return false;
  }
  if (!units.length) {
    evidence.push(`${IOMMU_CLASS}: no Intel DMAR units`);
    return false;
  }
  let capable = false;
  for (const unit of units) {
    const path = `${IOMMU_CLASS}/${unit}/intel-iommu/ecap`;
    const text = readText(root, path);
    if (text === undefined) {
      evidence.push(`${path}: not readable`);
      continue;
    }
    let bit: boolean;
    try {
      bit = dmarInterruptRemapCapable(text);
    } catch {
      evidence.push(`${path}: "${text.trim()}" is not hex`);
      continue;
    }
    evidence.push(bit ? `${path} bit 3 (IR) set: capable, not proof it is enabled` : `${path} bit 3 (IR) clear: no interrupt remapping`);
    capable ||= bit;
  }
  return capable;
}

/** The arm64 MSI controllers a device tree describes, by their `compatible` strings. */
export interface DeviceTreeMsiControllers {
  /** GICv3 ITS nodes (`arm,gic-v3-its`): MSIs carry the device ID, so they are isolated per device. */
  its: string[];
  /** GICv2m frames (`arm,gic-v2m-frame`): a doorbell any device can write, no isolation. */
  gicv2m: string[];
}

/**
 * Find the GICv3 ITS and GICv2m MSI frames in the flattened device tree
 * (`/sys/firmware/devicetree/base/<intc>/<child>/compatible`), two levels
 * deep as the bindings place them under the GIC node. Empty lists on x86 and
 * on ACPI arm64 hosts (no device tree).
 * @param root directory standing in for `/`
 */
export function deviceTreeMsiControllers(root = "/"): DeviceTreeMsiControllers {
  const out: DeviceTreeMsiControllers = { its: [], gicv2m: [] };
  const base = join(root, DEVICE_TREE);
  let top: string[];
  try {
    top = readdirSync(base).sort();
  } catch {
    return out;
  }
  for (const parent of top) {
    let children: string[];
    try {
      children = readdirSync(join(base, parent)).sort();
    } catch {
      continue; // a property, not a node
    }
    for (const child of children) {
      const compatible = readText(root, `${DEVICE_TREE}/${parent}/${child}/compatible`);
      if (compatible === undefined) continue;
      const names = compatible.split("\0");
      const node = `${parent}/${child}`;
      if (names.includes("arm,gic-v3-its")) out.its.push(node);
      if (names.includes("arm,gic-v2m-frame")) out.gicv2m.push(node);
    }
  }
  return out;
}

/** The device tree's MSI controllers as evidence lines; returns what was found. */
function observeDeviceTree(root: string, evidence: string[]): DeviceTreeMsiControllers {
  const dt = deviceTreeMsiControllers(root);
  if (dt.its.length) evidence.push(`${DEVICE_TREE}: GICv3 ITS (arm,gic-v3-its at ${chipList(dt.its)}): MSIs isolated per device`);
  if (dt.gicv2m.length) evidence.push(`${DEVICE_TREE}: GICv2m MSI frame (arm,gic-v2m-frame at ${chipList(dt.gicv2m)}): no MSI isolation`);
  return dt;
}

/** What the container tells us, as an evidence line. */
function describeContainer(container: IsolationContainerState | undefined, allowUnsafe: "Y" | "N" | undefined): string {
  if (!container) return "no VFIO container given: the kernel's isolation check was not observed";
  if (container.iommuType === "noiommu") return "container uses VFIO_NOIOMMU_IOMMU: no DMA or MSI isolation at all: the device can write any physical memory and send any interrupt, and the kernel taints itself (TAINT_USER)";
  if (!container.iommuType || !container.attached) return "no group attached to a type1 container yet: the kernel's isolation check has not run";
  if (container.iommuType === "iommufd") {
    return allowUnsafe === "N"
      ? "device bound to iommufd (VFIO_DEVICE_BIND_IOMMUFD) while iommufd allow_unsafe_interrupts = N: iommufd checked MSI isolation"
      : "device bound to iommufd, but iommufd allow_unsafe_interrupts is not N: iommufd may have skipped its isolation check";
  }
  if (allowUnsafe === "N") return `group attached to a ${container.iommuType} container while allow_unsafe_interrupts = N: the kernel checked MSI isolation`;
  return `group attached to a ${container.iommuType} container, but allow_unsafe_interrupts is not N: the kernel may have skipped its isolation check`;
}

/**
 * Decide how sure we are that MSIs are isolated on this host, with one
 * evidence line per source (missing files included):
 * - `attested`: a device was bound to iommufd while iommufd's
 *   `allow_unsafe_interrupts` reads N (iommufd refuses the bind otherwise),
 *   or a group was attached to a type1/type1v2 container while
 *   `allow_unsafe_interrupts` reads N (type1 refuses the attach otherwise);
 * - `observed`: `IR-` chips or ITS MSI domains in /proc/interrupts, or a
 *   GICv3 ITS in the device tree (arm64);
 * - `none`: a noiommu container (the device can DMA anywhere, so nothing is
 *   isolated whatever /proc/interrupts says), or `allow_unsafe_interrupts` = Y
 *   or a GICv2m MSI frame (arm64) with nothing observed;
 * - `capable`: only the Intel DMAR ecap IR bit is set;
 * - `unknown`: nothing conclusive.
 *
 * Reads the backend's `allow_unsafe_interrupts` (`/sys/module/vfio_iommu_type1/parameters/`,
 * or `/sys/module/iommufd/parameters/` for iommufd),
 * `/proc/interrupts`, the device tree's GIC children
 * (`/sys/firmware/devicetree/base/*\/*\/compatible`) and, without an arm64
 * MSI controller there, `/sys/class/iommu/dmar*\/intel-iommu/ecap`, all under
 * `root`. Never throws.
 */
export function detectIsolation(opts: IsolationEvidenceSources & { container?: IsolationContainerState } = {}): IsolationVerdict {
  const root = opts.root ?? "/";
  const evidence: string[] = [];
  const { container } = opts;
  const allowUnsafe = readAllowUnsafe(root, container?.iommuType === "iommufd" ? "iommufd" : "type1", evidence);
  const observedChips = observeInterrupts(root, evidence);
  const dt = observeDeviceTree(root, evidence);
  const observed = observedChips || dt.its.length > 0;
  const capable = dt.its.length + dt.gicv2m.length > 0 ? false : dmarCapable(root, evidence);
  evidence.unshift(describeContainer(container, allowUnsafe));

  if (container?.iommuType === "noiommu") return isolationVerdict("none", evidence);
  if (container?.attached && container.iommuType && allowUnsafe === "N") return isolationVerdict("attested", evidence);
  if (observed) return isolationVerdict("observed", evidence);
  if (allowUnsafe === "Y" || dt.gicv2m.length > 0) return isolationVerdict("none", evidence);
  if (capable) return isolationVerdict("capable", evidence);
  return isolationVerdict("unknown", evidence);
}
