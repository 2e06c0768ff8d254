/** Unit tests run without containerd; integration tests share one harness
 *  (private containerd + registry) started once in globalSetup. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { diagnostics: false }],
  },
  globalSetup: '<rootDir>/test/harness/jest-global-setup.ts',
  globalTeardown: '<rootDir>/test/harness/jest-global-teardown.ts',
  testTimeout: 120000,
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
};
