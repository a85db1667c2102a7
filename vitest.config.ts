import { configDefaults, defineConfig } from 'vitest/config';

// The headlessgl (GLSL) tests need a display: they run separately under xvfb-run (npm run test:gl).
export default defineConfig({
  test: {
    exclude: [...configDefaults.exclude, '**/*.gl.test.ts', 'node_modules/**', 'dist/**'],
  },
});
