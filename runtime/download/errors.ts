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

/**
 * Failures another try cannot fix by itself (the repository, the revision, the token, the volume must
 * change first): the CLI exits with PERMANENT_FAILURE_EXIT_CODE instead of 1, so a download Job fails at
 * once (its pod failure policy) instead of retrying its pod with backoff; the operator's next attempt
 * comes after its own, longer backoff. Network and server errors (after the downloader's own retries) and
 * failed verifications exit 1 and are retried.
 */
export const PERMANENT_ERRORS: ReadonlySet<DownloadErrorCode> = new Set<DownloadErrorCode>([
  'RepoNotFound', 'RevisionNotFound', 'EntryNotFound', 'GatedRepo', 'Unauthorized', 'DiskFull', 'NotWritable', 'NoFiles', 'InvalidListing',
]);
export const PERMANENT_FAILURE_EXIT_CODE = 3;

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
