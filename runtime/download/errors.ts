// Download failures, each with a machine-readable code (the operator shows it as the reason) and a
// sentence that says what to do.
export type DownloadErrorCode =
  | 'RepoNotFound' | 'RevisionNotFound' | 'EntryNotFound' | 'GatedRepo' | 'Unauthorized'
  | 'DiskFull' | 'NotWritable' | 'VerificationFailed' | 'HttpError' | 'NetworkError' | 'NoFiles' | 'InvalidListing';

export class DownloadError extends Error {
  constructor(readonly code: DownloadErrorCode, message: string, readonly retryable = false) {
    super(message);
    this.name = 'DownloadError';
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
