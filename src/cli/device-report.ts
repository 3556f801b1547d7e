/**
 * What `bun-vfio info` and `list` show about one PCI function, read from
 * sysfs (attributes, `resource`, `config`) and the system's pci.ids, in the
 * shape of the documented JSON schema. Needs no VFIO and no driver change.
 */
import { readFileSync } from "node:fs";
import { groupViability, type GroupViability } from "../host/groups.ts";
import { pciDeviceInfo, type PciDeviceInfo } from "../host/pci.ts";
import { pciDevicePath, type HostOptions } from "../host/sysfs.ts";
import { hex } from "../support/format.ts";
import { decodeBars } from "../pci/bars.ts";
import { findCapability, PciCapId } from "../pci/capabilities.ts";
import { configRead16, configRead32, PciCommand, PCI_STD_HEADER_SIZE } from "../pci/config-space.ts";
import { capabilityBracket, describeCapabilities, type CapabilityText } from "./capability-text.ts";
import { className, lspciSize, progIfText, subsystemName, vendorDeviceName } from "./lspci-names.ts";

/** `0x`-prefixed lowercase hex, zero-padded: the JSON form of every id and address. */
const hexString = hex;

/** A BAR or the ROM as lspci -v shows it. */
export interface RegionLine {
  readonly index: number;
  readonly kind: "mem" | "io" | "rom";
  readonly address: bigint;
  readonly size: bigint;
  readonly is64Bit: boolean;
  readonly prefetchable: boolean;
  /** Decoding of this space is off in the Command register (lspci's `[disabled]`). */
  readonly disabled: boolean;
}

/** One PCI function: identity, names, driver, group and (with `config` readable) regions and capabilities. */
export interface DeviceReport {
  readonly info: PciDeviceInfo;
  /** The text lspci -nn prints after the slot: `Class [0108]: Vendor Device [1b36:0010] (rev 02)`. */
  readonly title: string;
  readonly className: string;
  readonly deviceName: string;
  readonly subsystem: string | undefined;
  readonly progIf: string;
  readonly group: GroupViability | undefined;
  /** Bytes of `config` this process could read (64 without root, 256 or 4096 as root). */
  readonly configBytes: number;
  readonly regions: readonly RegionLine[];
  readonly capabilities: readonly CapabilityText[];
}

function readConfig(bdf: string, options?: HostOptions): Uint8Array {
  try {
    return new Uint8Array(readFileSync(`${pciDevicePath(options, bdf)}/config`));
  } catch {
    return new Uint8Array(0);
  }
}

function regionsOf(info: PciDeviceInfo, config: Uint8Array): RegionLine[] {
  if (config.length < PCI_STD_HEADER_SIZE) return [];
  const command = configRead16(config, 4);
  const bars = decodeBars(config);
  const out: RegionLine[] = [];
  for (const bar of bars) {
    if (bar.upperHalfOf !== undefined) continue;
    const res = info.resources[bar.index];
    if (!res || (res.size === 0n && bar.raw === 0)) continue;
    const io = bar.kind === "io";
    out.push({
      index: bar.index,
      kind: io ? "io" : "mem",
      address: res.start,
      size: res.size,
      is64Bit: bar.kind === "mem64",
      prefetchable: bar.prefetchable,
      disabled: !(command & (io ? PciCommand.IO : PciCommand.MEMORY)),
    });
  }
  const rom = info.resources[6];
  const headerType = config[0x0e]! & 0x7f;
  if (rom && rom.size > 0n && headerType === 0) {
    const romBar = configRead32(config, 0x30);
    out.push({ index: 6, kind: "rom", address: rom.start, size: rom.size, is64Bit: false, prefetchable: false, disabled: (romBar & 1) === 0 });
  }
  return out;
}

/** lspci's Subsystem line: header fields of a normal device, the SSVID capability of a bridge. */
function subsystemOf(info: PciDeviceInfo, config: Uint8Array, fromSysfs: boolean, options?: HostOptions): string | undefined {
  const headerType = config.length >= PCI_STD_HEADER_SIZE ? config[0x0e]! & 0x7f : 0;
  if (headerType === 1) {
    const ssvid = findCapability(config, PciCapId.SSVID);
    if (!ssvid) return undefined;
    return subsystemName(info.vendorId, info.deviceId, configRead16(config, ssvid.offset + 4), configRead16(config, ssvid.offset + 6), options);
  }
  if (headerType !== 0 || !fromSysfs) return undefined;
  return subsystemName(info.vendorId, info.deviceId, info.subsystemVendorId!, info.subsystemDeviceId!, options);
}

/** Reads everything `info` shows from sysfs for one device. Throws VfioError ENODEV/EINVAL for a bad address. */
export function deviceReport(bdf: string, options?: HostOptions): DeviceReport {
  const info = pciDeviceInfo(bdf, options);
  const config = readConfig(info.bdf, options);
  const cls = className(info.classCode, options);
  const dev = vendorDeviceName(info.vendorId, info.deviceId, options);
  const rev = info.revision ? ` (rev ${info.revision.toString(16).padStart(2, "0")})` : "";
  const hasSubsystem = info.subsystemVendorId !== undefined && info.subsystemDeviceId !== undefined && info.subsystemVendorId !== 0 && info.subsystemVendorId !== 0xffff;
  let group: GroupViability | undefined;
  if (info.iommuGroup !== undefined) {
    try {
      group = groupViability(info.iommuGroup, options);
    } catch {
      group = undefined;
    }
  }
  return {
    info,
    title: `${cls}: ${dev}${rev}`,
    className: cls,
    deviceName: dev,
    subsystem: subsystemOf(info, config, hasSubsystem, options),
    progIf: progIfText(info.classCode, options),
    group,
    configBytes: config.length,
    regions: regionsOf(info, config),
    capabilities: config.length >= PCI_STD_HEADER_SIZE ? describeCapabilities(config, info.vendorId, info.deviceId, options) : [],
  };
}

/** `Region 0: Memory at febf0000 (64-bit, non-prefetchable) [size=16K]`, as lspci -v prints it. */
export function regionText(r: RegionLine): string {
  const disabled = r.disabled ? " [disabled]" : "";
  if (r.kind === "rom") return `Expansion ROM at ${r.address.toString(16).padStart(8, "0")}${disabled} [size=${lspciSize(r.size)}]`;
  if (r.kind === "io") return `Region ${r.index}: I/O ports at ${r.address.toString(16).padStart(4, "0")}${disabled} [size=${lspciSize(r.size)}]`;
  const width = r.is64Bit ? "64-bit" : "32-bit";
  return `Region ${r.index}: Memory at ${r.address.toString(16).padStart(8, "0")} (${width}, ${r.prefetchable ? "" : "non-"}prefetchable)${disabled} [size=${lspciSize(r.size)}]`;
}

/** The group column/line: `3 (viable)` or `5 (not viable: 0000:01:02.0 virtio-pci)`. */
export function groupText(group: GroupViability | undefined, iommuGroup: number | undefined): string {
  if (iommuGroup === undefined) return "none";
  if (!group) return `${iommuGroup}`;
  if (group.viable) return `${iommuGroup} (viable)`;
  return `${iommuGroup} (not viable: ${group.blockers.map((b) => `${b.bdf} bound to ${b.driver}`).join(", ")})`;
}

/** The lines `info` prints from sysfs, lspci -vv style (tab-indented). */
export function reportLines(r: DeviceReport): string[] {
  const lines = [`${r.info.bdf} ${r.title}${r.progIf}`];
  if (r.subsystem) lines.push(`\tSubsystem: ${r.subsystem}`);
  for (const region of r.regions) lines.push(`\t${regionText(region)}`);
  if (r.configBytes < 256) lines.push(`\t(only ${r.configBytes} bytes of config space readable: run as root for capabilities)`);
  for (const cap of r.capabilities) {
    lines.push(`\tCapabilities: ${capabilityBracket(cap)} ${cap.text}`);
    for (const d of cap.details) lines.push(`\t\t${d}`);
  }
  if (r.info.driver) lines.push(`\tKernel driver in use: ${r.info.driver}`);
  if (r.info.driverOverride) lines.push(`\tdriver_override: ${r.info.driverOverride}`);
  lines.push(`\tIOMMU group: ${groupText(r.group, r.info.iommuGroup)}`);
  if (r.group && r.group.members.length > 1) {
    lines.push(`\tGroup members: ${r.group.members.map((m) => `${m.bdf} (${m.driver ?? "no driver"})`).join(", ")}`);
  }
  return lines;
}

/** The documented JSON object of one device (schema in the README, "CLI"): every key present, `null` when unknown. */
export function reportJson(r: DeviceReport): Record<string, unknown> {
  const i = r.info;
  const opt = (n: number | undefined, w: number) => (n === undefined ? null : hexString(n, w));
  return {
    bdf: i.bdf,
    vendor: hexString(i.vendorId, 4),
    device: hexString(i.deviceId, 4),
    subsystemVendor: opt(i.subsystemVendorId, 4),
    subsystemDevice: opt(i.subsystemDeviceId, 4),
    class: hexString(i.classCode, 6),
    revision: opt(i.revision, 2),
    names: {
      vendor: i.names.vendor ?? null,
      device: i.names.device ?? null,
      subsystem: i.names.subsystem ?? null,
      class: i.names.class ?? null,
      subclass: i.names.subclass ?? null,
      progIf: i.names.progIf ?? null,
    },
    title: r.title,
    driver: i.driver ?? null,
    driverOverride: i.driverOverride ?? null,
    numaNode: i.numaNode ?? null,
    iommuGroup: i.iommuGroup ?? null,
    viable: r.group ? r.group.viable : null,
    groupMembers: r.group ? r.group.members.map((m) => ({ bdf: m.bdf, driver: m.driver ?? null })) : [],
    blockers: r.group ? r.group.blockers.map((m) => ({ bdf: m.bdf, driver: m.driver ?? null })) : [],
    configBytes: r.configBytes,
    regions: r.regions.map((g) => ({
      index: g.index,
      kind: g.kind,
      address: hexString(g.address),
      size: hexString(g.size),
      is64Bit: g.is64Bit,
      prefetchable: g.prefetchable,
      disabled: g.disabled,
    })),
    capabilities: r.capabilities.map((c) => ({
      kind: c.kind,
      id: hexString(c.id, c.kind === "standard" ? 2 : 4),
      offset: hexString(c.offset, c.kind === "standard" ? 2 : 3),
      version: c.version ?? null,
      name: c.name,
      text: c.text,
      details: [...c.details],
    })),
  };
}
