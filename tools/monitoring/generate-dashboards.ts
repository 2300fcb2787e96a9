// Writes charts/jamba-operator/dashboards/<uid>.json from dashboards.ts:
//   npm run build && node dist/tools/monitoring/generate-dashboards.js
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DASHBOARDS, toGrafana } from './dashboards.js';

export const DASHBOARDS_DIR = 'charts/jamba-operator/dashboards';

export function renderDashboardFiles(): Map<string, string> {
  return new Map(DASHBOARDS.map((d) => [`${d.uid}.json`, `${JSON.stringify(toGrafana(d), null, 2)}\n`]));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(DASHBOARDS_DIR, { recursive: true });
  for (const [file, text] of renderDashboardFiles()) {
    writeFileSync(join(DASHBOARDS_DIR, file), text);
    process.stdout.write(`wrote ${join(DASHBOARDS_DIR, file)}\n`);
  }
}
