/**
 * lspci's device filters: `-s [[[[<domain>]:]<bus>]:][<device>][.[<func>]]`
 * and `-d [<vendor>]:[<device>][:<class>[:<prog-if>]]`, each field hex, an
 * empty field or `*` matching anything (pciutils lib/filter.c semantics).
 */
import { UsageError } from "./args.ts";
import { parseBdf } from "../host/bdf.ts";

/** A parsed filter; `undefined` fields match anything. */
export interface PciFilter {
  domain?: number;
  bus?: number;
  device?: number;
  function?: number;
  vendorId?: number;
  deviceId?: number;
  /** Base class and subclass (upper 16 bits of the class code). */
  classId?: number;
  progIf?: number;
}

/** What the filter is compared with. */
export interface FilterSubject {
  readonly bdf: string;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
}

function field(command: string, option: string, text: string | undefined, max: number): number | undefined {
  if (text === undefined || text === "" || text === "*") return undefined;
  if (!/^[0-9a-f]+$/i.test(text)) throw new UsageError(command, `${option}: "${text}" is not hex`, `Write ${option} as lspci does, e.g. ${option === "-s" ? "-s 00:04.0 or -s 04" : "-d 1b36:0010 or -d 8086:"}.`);
  const value = parseInt(text, 16);
  if (value > max) throw new UsageError(command, `${option}: ${text} is out of range (max ${max.toString(16)})`, `See \`bun-vfio ${command} --help\`.`);
  return value;
}

/** Parses `-s` the way pciutils does: the last `:` separates bus from device, an earlier one domain from bus. */
export function parseSlotFilter(command: string, text: string): PciFilter {
  const filter: PciFilter = {};
  let rest = text;
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    const head = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
    const first = head.indexOf(":");
    if (first >= 0) {
      filter.domain = field(command, "-s", head.slice(0, first), 0xffffffff);
      filter.bus = field(command, "-s", head.slice(first + 1), 0xff);
    } else filter.bus = field(command, "-s", head, 0xff);
  }
  const dot = rest.indexOf(".");
  filter.device = field(command, "-s", dot >= 0 ? rest.slice(0, dot) : rest, 0x1f);
  if (dot >= 0) filter.function = field(command, "-s", rest.slice(dot + 1), 7);
  return filter;
}

/** Parses `-d vendor:device[:class[:prog-if]]`. */
export function parseIdFilter(command: string, text: string): PciFilter {
  const parts = text.split(":");
  if (parts.length < 2 || parts.length > 4) throw new UsageError(command, `-d: "${text}" is not vendor:device[:class[:prog-if]]`, "Write -d as lspci does, e.g. -d 1b36:0010, -d 8086: or -d ::0108.");
  return {
    vendorId: field(command, "-d", parts[0], 0xffff),
    deviceId: field(command, "-d", parts[1], 0xffff),
    classId: field(command, "-d", parts[2], 0xffff),
    progIf: field(command, "-d", parts[3], 0xff),
  };
}

/** True when `subject` passes every set field of every filter. */
export function matchesFilters(subject: FilterSubject, filters: readonly PciFilter[]): boolean {
  const a = parseBdf(subject.bdf);
  return filters.every((f) =>
    (f.domain === undefined || f.domain === a.domain) &&
    (f.bus === undefined || f.bus === a.bus) &&
    (f.device === undefined || f.device === a.device) &&
    (f.function === undefined || f.function === a.function) &&
    (f.vendorId === undefined || f.vendorId === subject.vendorId) &&
    (f.deviceId === undefined || f.deviceId === subject.deviceId) &&
    (f.classId === undefined || f.classId === subject.classCode >>> 8) &&
    (f.progIf === undefined || f.progIf === (subject.classCode & 0xff)));
}
