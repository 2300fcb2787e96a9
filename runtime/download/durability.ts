// Whether a download's files may be trusted later without reading them again. A file flushed to disk
// (fdatasync) before it was recorded as verified stays so across a crash of the node. Without the flush
// (`--no-fsync`: a pod's own emptyDir, where it only delays the start, or wherever a rehash after the rare
// crash costs less than flushing every download), the bytes are certain only while the kernel that wrote
// them runs: its page cache is what every reader on the node sees. So the record names the kernel's boot,
// and a record from another boot, or from another node sharing the volume, is checked by hashing the files.
import { readFile } from 'node:fs/promises';

/** How files were recorded as verified: flushed, or only written under the boot named. */
export interface Durability {
  fsynced: boolean;
  /** The boot of the kernel that wrote them (only where they were not flushed). */
  bootId?: string;
}

const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

/** This kernel's boot id (Linux; in a container, the node's), or undefined where there is none. */
export async function currentBootId(): Promise<string | undefined> {
  const id = await readFile(BOOT_ID_FILE, 'utf8').catch(() => undefined);
  return id?.trim() || undefined;
}

/** The record for files written by this run. */
export function durabilityOf(fsynced: boolean, bootId: string | undefined): Durability {
  return fsynced ? { fsynced } : { fsynced, ...(bootId ? { bootId } : {}) };
}

/**
 * Files recorded with `recorded` are still what was verified, without reading them: they were flushed,
 * or this is the boot that wrote them. A record from before this field existed was flushed.
 */
export function trustedWithoutRehash(recorded: Partial<Durability> | undefined, bootId: string | undefined): boolean {
  if (!recorded || recorded.fsynced !== false) return true;
  return recorded.bootId !== undefined && recorded.bootId === bootId;
}
