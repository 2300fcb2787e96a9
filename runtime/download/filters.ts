// Which files of a repository to fetch: by default only what serving needs (config, tokenizer files,
// safetensors and their index), not the README, images, or .bin/.pt duplicates of the weights.
export const DEFAULT_INCLUDE = [
  '*.json',
  '*.safetensors',
  'tokenizer.model',
  '*.tiktoken',
  'merges.txt',
  'vocab.txt',
  '*.jinja',
];

/** A glob over '/'-separated paths: `*` within a segment, `**` across segments, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export interface FileFilter {
  include: string[];
  exclude: string[];
}

/** A pattern without '/' matches the file's name in any directory (like .gitignore), one with '/' the whole path. */
export function matchesFilter(path: string, filter: FileFilter): boolean {
  const matches = (pattern: string) => globToRegExp(pattern).test(pattern.includes('/') ? path : path.slice(path.lastIndexOf('/') + 1));
  return filter.include.some(matches) && !filter.exclude.some(matches);
}
