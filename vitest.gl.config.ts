import { defineConfig } from 'vitest/config';

// Tests of the gpu.js headlessgl backend (real GLSL on Mesa's software renderer), run under
// xvfb-run by `npm run test:gl`, which `npm test` calls.
export default defineConfig({
  test: {
    include: ['test/**/*.gl.test.ts'],
  },
});
