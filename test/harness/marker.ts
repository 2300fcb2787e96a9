import path from 'node:path';
import { clusterDir } from './exec.js';

/** Present while a cluster started by jest's global setup is up; tools/cluster/down.sh removes it. */
export const startedByJestMarker = path.join(clusterDir, 'started-by-jest');
