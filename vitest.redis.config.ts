import { defineConfig } from 'vitest/config';

// Tests of `sae-metrics coordinate` and `worker` against a real redis-server (Debian's package),
// which each test file starts on a free loopback port: `npm run test:redis`, run by .ci/run after
// `npm test`, which leaves them out so that it passes on a machine without redis-server.
export default defineConfig({
  test: {
    include: ['test/**/*.redis.test.ts'],
    // Each file runs its own redis-server and worker processes: one file at a time.
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 60_000,
  },
});
