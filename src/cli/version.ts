/**
 * The version of this sae-metrics build (`--version`, and what a shard's part records: parts of
 * different builds may round differently and are not merged).
 *
 * @module
 */
import { readFileSync } from 'node:fs';

/** The package version, from the package.json above this module (in src/cli or dist/src/cli). */
export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sae-metrics' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next level
    }
  }
  return 'unknown';
}
