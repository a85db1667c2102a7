import { configDefaults, defineConfig } from 'vitest/config';

// The headlessgl (GLSL) tests need a display: they run separately under xvfb-run (npm run test:gl);
// the queue tests need redis-server: they run separately too (npm run test:redis).
export default defineConfig({
  test: {
    exclude: [...configDefaults.exclude, '**/*.gl.test.ts', '**/*.redis.test.ts', 'node_modules/**', 'dist/**'],
  },
});
