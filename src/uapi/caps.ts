/**
 * The `vfio_info_cap_header` chain that VFIO appends to info structs
 * (device, region, type1 IOMMU info): {id u16, version u16, next u32}, where
 * `next` is an offset from the start of the info buffer and 0 ends the chain.
 */
import { OFFSETOF as O, SIZEOF } from "./layout.ts";

/** One capability in a chain: its id, version, and its bytes (header included). */
export interface RawCap {
  id: number;
  version: number;
  /** Offset of the header from the start of the info buffer. */
  offset: number;
  /** A view of the capability, header first, up to the next one or the buffer end. */
  view: DataView;
}

/**
 * Walks the chain starting at `firstOffset` (0 = no caps). Bounded: stops at
 * offsets outside the buffer, backward links (cycles) and after 64 entries.
 */
export function walkCapChain(buf: Uint8Array, firstOffset: number): RawCap[] {
  const caps: RawCap[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let offset = firstOffset;
  while (offset !== 0 && caps.length < 64) {
    if (offset < 0 || offset + SIZEOF.vfio_info_cap_header > buf.byteLength) break;
    const id = dv.getUint16(offset + O["vfio_info_cap_header.id"], true);
    const version = dv.getUint16(offset + O["vfio_info_cap_header.version"], true);
    const next = dv.getUint32(offset + O["vfio_info_cap_header.next"], true);
    const end = next > offset && next <= buf.byteLength ? next : buf.byteLength;
    caps.push({ id, version, offset, view: new DataView(buf.buffer, buf.byteOffset + offset, end - offset) });
    if (next !== 0 && next <= offset) break; // a chain only moves forward
    offset = next;
  }
  return caps;
}
