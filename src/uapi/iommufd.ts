/**
 * `include/uapi/linux/iommufd.h` (the `/dev/iommu` ioctls) and the VFIO
 * device-cdev ioctls of `linux/vfio.h` that bind a device to it, with
 * encoders and decoders on plain byte buffers. Every iommufd struct starts
 * with its own size (`size` or `argsz`), which the kernel uses to tell old
 * callers from new ones, so each encoder writes the exact size it fills.
 * Layouts follow the kernel header; the guest suite of the `iommufd` profile
 * checks them against a real kernel.
 */
import { _IO, VFIO_BASE, VFIO_TYPE } from "./vfio.ts";

export const IOMMUFD_TYPE = 0x3b; // ';'
export const IOMMUFD_CMD_BASE = 0x80;

export const IOMMU_DESTROY: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 0);
export const IOMMU_IOAS_ALLOC: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 1);
export const IOMMU_IOAS_IOVA_RANGES: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 4);
export const IOMMU_IOAS_MAP: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 5);
export const IOMMU_IOAS_UNMAP: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 6);

export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

/* VFIO device cdev (`/dev/vfio/devices/vfioN`). */
export const VFIO_DEVICE_BIND_IOMMUFD: number = _IO(VFIO_TYPE, VFIO_BASE + 18);
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT: number = _IO(VFIO_TYPE, VFIO_BASE + 19);
export const VFIO_DEVICE_DETACH_IOMMUFD_PT: number = _IO(VFIO_TYPE, VFIO_BASE + 20);
/** `vfio_device_bind_iommufd.flags`: `token_uuid_ptr` carries the VF token (Linux 6.17, and stable kernels with the fix). */
export const VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0;

/** Struct sizes (the kernel's `sizeof`, or the size up to the last field a caller fills). */
export const IOMMUFD_SIZEOF = {
  iommu_ioas_alloc: 12,
  iommu_iova_range: 16,
  iommu_ioas_iova_ranges: 32,
  iommu_ioas_map: 40,
  iommu_ioas_unmap: 24,
  /** Without the VF-token pointer: what kernels before the token flag accept as the whole struct. */
  vfio_device_bind_iommufd: 16,
  vfio_device_bind_iommufd_token: 24,
  vfio_device_attach_iommufd_pt: 12,
} as const;

function sized(size: number): { buf: Uint8Array; dv: DataView } {
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, size, true);
  return { buf, dv };
}

/** `struct iommu_ioas_alloc` (flags 0); the kernel writes `out_ioas_id`. */
export function encodeIoasAlloc(): Uint8Array {
  return sized(IOMMUFD_SIZEOF.iommu_ioas_alloc).buf;
}

/** `out_ioas_id` of an IOMMU_IOAS_ALLOC that succeeded. */
export function decodeIoasAllocId(buf: Uint8Array): number {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(8, true);
}

/** `struct iommu_ioas_iova_ranges`: room for `count` ranges at user address `arrayAddress`. */
export function encodeIovaRanges(ioasId: number, count: number, arrayAddress: bigint): Uint8Array {
  const { buf, dv } = sized(IOMMUFD_SIZEOF.iommu_ioas_iova_ranges);
  dv.setUint32(4, ioasId, true);
  dv.setUint32(8, count, true);
  dv.setBigUint64(16, arrayAddress, true);
  return buf;
}

/** What IOMMU_IOAS_IOVA_RANGES wrote back: the total number of ranges and the IOVA alignment. */
export function decodeIovaRangesHeader(buf: Uint8Array): { count: number; alignment: bigint } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return { count: dv.getUint32(8, true), alignment: dv.getBigUint64(24, true) };
}

/** `count` `struct iommu_iova_range` entries (`start`, inclusive `last`) from the output array. */
export function decodeIovaRangeArray(bytes: Uint8Array, count: number): { start: bigint; end: bigint }[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: { start: bigint; end: bigint }[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * IOMMUFD_SIZEOF.iommu_iova_range;
    out.push({ start: dv.getBigUint64(at, true), end: dv.getBigUint64(at + 8, true) });
  }
  return out;
}

/** `struct iommu_ioas_map` at a fixed IOVA. */
export function encodeIoasMap(ioasId: number, flags: number, vaddr: bigint, length: bigint, iova: bigint): Uint8Array {
  const { buf, dv } = sized(IOMMUFD_SIZEOF.iommu_ioas_map);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, ioasId, true);
  dv.setBigUint64(16, vaddr, true);
  dv.setBigUint64(24, length, true);
  dv.setBigUint64(32, iova, true);
  return buf;
}

/** `struct iommu_ioas_unmap`; after the call `length` holds the bytes unmapped. */
export function encodeIoasUnmap(ioasId: number, iova: bigint, length: bigint): Uint8Array {
  const { buf, dv } = sized(IOMMUFD_SIZEOF.iommu_ioas_unmap);
  dv.setUint32(4, ioasId, true);
  dv.setBigUint64(8, iova, true);
  dv.setBigUint64(16, length, true);
  return buf;
}

/** The bytes an IOMMU_IOAS_UNMAP unmapped. */
export function decodeIoasUnmapLength(buf: Uint8Array): bigint {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(16, true);
}

/** `struct vfio_device_bind_iommufd`; with `tokenAddress`, the VF token flag and the pointer to its 16 bytes. */
export function encodeBindIommufd(iommufd: number, tokenAddress?: bigint): Uint8Array {
  const { buf, dv } = sized(tokenAddress === undefined ? IOMMUFD_SIZEOF.vfio_device_bind_iommufd : IOMMUFD_SIZEOF.vfio_device_bind_iommufd_token);
  dv.setInt32(8, iommufd, true);
  if (tokenAddress !== undefined) {
    dv.setUint32(4, VFIO_DEVICE_BIND_FLAG_TOKEN, true);
    dv.setBigUint64(16, tokenAddress, true);
  }
  return buf;
}

/** `out_devid` of a VFIO_DEVICE_BIND_IOMMUFD that succeeded. */
export function decodeBoundDeviceId(buf: Uint8Array): number {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(12, true);
}

/** `struct vfio_device_attach_iommufd_pt` attaching to page table (or IOAS) `ptId`. */
export function encodeAttachPt(ptId: number): Uint8Array {
  const { buf, dv } = sized(IOMMUFD_SIZEOF.vfio_device_attach_iommufd_pt);
  dv.setUint32(8, ptId, true);
  return buf;
}

/** A UUID string (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`) as the 16 bytes of the kernel's `uuid_t`, or undefined if malformed. */
export function uuidBytes(uuid: string): Uint8Array | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid)) return undefined;
  const hex = uuid.replace(/-/g, "");
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}
