import { readFileSync } from "node:fs";
import { hostPath, type HostOptions } from "./sysfs.ts";

/** Human-readable names from the system's pci.ids; each is `undefined` when unknown. */
export interface PciIdNames {
  readonly vendor?: string;
  readonly device?: string;
  readonly subsystem?: string;
  /** Base class name, e.g. "Mass storage controller". */
  readonly class?: string;
  /** Subclass name, e.g. "Non-Volatile memory controller". */
  readonly subclass?: string;
  /** Programming interface name, e.g. "NVM Express". */
  readonly progIf?: string;
}

/** The ids a name lookup needs; {@link PciDeviceInfo} satisfies it. */
export interface PciIdQuery {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly subsystemVendorId?: number;
  readonly subsystemDeviceId?: number;
  /** 24-bit class code: base class, subclass, programming interface. */
  readonly classCode?: number;
}

// Where distributions install the pciutils database; the library never ships a copy.
const PCI_IDS_LOCATIONS = ["usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids", "usr/share/pci.ids"];

type Block = { name: string; children: string[] };
/** The file's text plus the blocks already looked up: listing a big machine asks for the same vendors over and over. */
type Database = { text: string; blocks: Map<string, Block | undefined> };

const databaseCache = new Map<string, Database | null>();

/** The pci.ids under the root, read once per process; `null` when the system has none. */
function loadDatabase(options?: HostOptions): Database | null {
  const root = options?.root ?? "/";
  const cached = databaseCache.get(root);
  if (cached !== undefined) return cached;
  let db: Database | null = null;
  for (const location of PCI_IDS_LOCATIONS) {
    try {
      db = { text: "\n" + readFileSync(hostPath(options, location), "utf8"), blocks: new Map() };
      break;
    } catch {
      // Names are a nicety: an unreadable database is treated as an absent one.
    }
  }
  databaseCache.set(root, db);
  return db;
}

const hex = (value: number, width: number) => value.toString(16).padStart(width, "0");

/**
 * The lines nested under the top-level line starting with `head` (a vendor
 * `"8086  "` or a class `"C 01  "`), without parsing the rest of the file.
 */
function findBlock(db: Database, head: string): Block | undefined {
  if (!db.blocks.has(head)) db.blocks.set(head, scanBlock(db.text, head));
  return db.blocks.get(head);
}

function scanBlock(db: string, head: string): Block | undefined {
  const start = db.indexOf("\n" + head);
  if (start < 0) return undefined;
  const lineAt = (from: number) => {
    const end = db.indexOf("\n", from);
    return { text: db.slice(from, end < 0 ? undefined : end), next: end < 0 ? -1 : end + 1 };
  };
  const first = lineAt(start + 1);
  const children: string[] = [];
  for (let next = first.next; next >= 0; ) {
    const line = lineAt(next);
    if (line.text.startsWith("\t")) children.push(line.text);
    else if (line.text !== "" && !line.text.startsWith("#")) break;
    next = line.next;
  }
  return { name: first.text.slice(head.length).trim(), children };
}

/** Name of the first child line at `depth` tabs whose key is `key`, searching from `from`; returns its index too. */
function findChild(children: string[], depth: number, key: string, from = 0, stopAtDepth?: number): { name: string; index: number } | undefined {
  const prefix = "\t".repeat(depth) + key + "  ";
  for (let i = from; i < children.length; i++) {
    const line = children[i]!;
    if (line.startsWith(prefix)) return { name: line.slice(prefix.length).trim(), index: i };
    if (stopAtDepth !== undefined && !line.startsWith("\t".repeat(stopAtDepth + 1))) return undefined;
  }
  return undefined;
}

/**
 * Looks up vendor, device, subsystem and class names in the system's pci.ids
 * (`/usr/share/misc/pci.ids` or `/usr/share/hwdata/pci.ids` under the root).
 * The file is read once and only the vendor's and class's blocks are
 * scanned. Without a pci.ids every name is `undefined`; this never throws
 * for a missing database.
 */
export function lookupPciNames(query: PciIdQuery, options?: HostOptions): PciIdNames {
  const db = loadDatabase(options);
  if (db === null) return {};
  const names: { -readonly [K in keyof PciIdNames]: PciIdNames[K] } = {};

  const vendor = findBlock(db, hex(query.vendorId, 4) + "  ");
  if (vendor) {
    names.vendor = vendor.name;
    const device = findChild(vendor.children, 1, hex(query.deviceId, 4));
    if (device) {
      names.device = device.name;
      if (query.subsystemVendorId !== undefined && query.subsystemDeviceId !== undefined) {
        const key = `${hex(query.subsystemVendorId, 4)} ${hex(query.subsystemDeviceId, 4)}`;
        names.subsystem = findChild(vendor.children, 2, key, device.index + 1, 1)?.name;
      }
    }
  }

  if (query.classCode !== undefined) {
    const klass = findBlock(db, `C ${hex((query.classCode >> 16) & 0xff, 2)}  `);
    if (klass) {
      names.class = klass.name;
      const sub = findChild(klass.children, 1, hex((query.classCode >> 8) & 0xff, 2));
      if (sub) {
        names.subclass = sub.name;
        names.progIf = findChild(klass.children, 2, hex(query.classCode & 0xff, 2), sub.index + 1, 1)?.name;
      }
    }
  }
  return names;
}

/** Forgets the cached pci.ids text (for tests that rewrite a fake tree). */
export function clearPciNamesCache(): void {
  databaseCache.clear();
}
