import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    // Generous limits: set-ups build C fixtures, packages and bundles, and the suite must hold on a machine busy
    // with other work (a 10-second hook limit once failed there). A limit only bounds how long a hang takes to fail.
    testTimeout: 120_000,
    hookTimeout: 600_000,
  },
});
