// The Hub's API: a revision's file listing (sizes, git blob ids, LFS sha256) and the download URLs.
import { DownloadError } from './errors.js';
import { failureOf, type HubHttp } from './http.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface RepoFile {
  /** Path inside the repository, '/'-separated. */
  path: string;
  size: number;
  /** sha256 of an LFS file's content. */
  sha256?: string;
  /** Git blob id (sha1 of "blob <size>\0" + content), for files kept in git. */
  blobId?: string;
}

export interface RevisionListing {
  repo: string;
  /** The commit the revision resolved to: every file is fetched at it, so a moving branch cannot mix versions. */
  commit: string;
  files: RepoFile[];
}

/** HF_ENDPOINT without a trailing slash (mirrors and the test server set it). */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env['HF_ENDPOINT'] || DEFAULT_ENDPOINT).replace(/\/+$/, '');
}

/** The token from the environment, as huggingface_hub reads it (HF_TOKEN, then the older name). */
export function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env['HF_TOKEN']?.trim() || env['HUGGING_FACE_HUB_TOKEN']?.trim() || undefined;
}

function repoPath(repo: string): string {
  return repo.split('/').map(encodeURIComponent).join('/');
}

export function resolveUrl(endpoint: string, repo: string, revision: string, file: string): string {
  return `${endpoint}/${repoPath(repo)}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

interface Sibling {
  rfilename?: unknown;
  size?: unknown;
  blobId?: unknown;
  lfs?: { sha256?: unknown; size?: unknown };
}

/** Files of a revision, with sizes and hashes (`?blobs=true`). */
export async function listRevision(http: HubHttp, endpoint: string, repo: string, revision: string): Promise<RevisionListing> {
  const url = `${endpoint}/api/models/${repoPath(repo)}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const what = `${repo}@${revision}`;
  const info = await http.withRetry(what, async () => {
    const res = await http.getText(url, { accept: 'application/json' });
    if (res.statusCode !== 200) throw failureOf(res, what, !!http.options.token);
    return JSON.parse(res.body) as { sha?: unknown; siblings?: unknown };
  });
  if (typeof info.sha !== 'string' || !Array.isArray(info.siblings)) {
    throw new DownloadError('InvalidListing', `${what}: the Hub's answer has no commit sha or file list (is HF_ENDPOINT a Hub?)`);
  }
  const files = (info.siblings as Sibling[]).map((s): RepoFile => {
    if (typeof s.rfilename !== 'string') throw new DownloadError('InvalidListing', `${what}: a file without a name in the listing`);
    const lfsSha = typeof s.lfs?.sha256 === 'string' ? s.lfs.sha256 : undefined;
    const size = typeof s.lfs?.size === 'number' ? s.lfs.size : s.size;
    if (typeof size !== 'number') throw new DownloadError('InvalidListing', `${what}: no size for ${s.rfilename} (the listing needs ?blobs=true)`);
    return { path: s.rfilename, size, ...(lfsSha ? { sha256: lfsSha } : {}), ...(!lfsSha && typeof s.blobId === 'string' ? { blobId: s.blobId } : {}) };
  });
  return { repo, commit: info.sha, files };
}
