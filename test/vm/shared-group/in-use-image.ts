/** The ext4 image of the shared-group profile's virtio-blk, shared by its host.ts and the guest's in-use test. */

/** Scratch file name (the profile's `scratch` entry and the virtio-blk's drive). */
export const EXT4_IMAGE = "ext4.img";
/** A file host.ts puts in the filesystem's root. */
export const MARKER_FILE = "bun-vfio-marker";
/** Its contents. */
export const MARKER_TEXT = "made on the host by test/vm/shared-group/host.ts\n";
