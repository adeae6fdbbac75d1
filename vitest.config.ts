import { defineConfig } from 'vitest/config';

// Two cores: two test files at a time. Each file gets its own database (test/helpers/db.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
