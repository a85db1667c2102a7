// Preloaded (`node --import`) into a command under test: at exit, writes the process's peak
// resident set size (ru_maxrss, KiB, every thread included) to $SAE_METRICS_MAX_RSS_FILE.
import { writeFileSync } from 'node:fs';

process.on('exit', () => {
  const file = process.env.SAE_METRICS_MAX_RSS_FILE;
  if (file) writeFileSync(file, String(process.resourceUsage().maxRSS));
});
