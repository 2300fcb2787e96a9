// Tests run from TypeScript sources through SWC (no type check here: `make typecheck` does that).
// ESM throughout, so jest runs with --experimental-vm-modules (see package.json "test").
// Two projects: `unit` needs nothing running; `cluster` gets the local control plane from its
// global setup, which jest triggers only when a test of that project is selected.
const common = {
  testEnvironment: 'node',
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' } }],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
};

export default {
  testTimeout: 60000,
  projects: [
    {
      ...common,
      displayName: 'unit',
      roots: ['<rootDir>/common', '<rootDir>/operator', '<rootDir>/runtime', '<rootDir>/tools', '<rootDir>/test/toolchain', '<rootDir>/test/runtime', '<rootDir>/test/monitoring', '<rootDir>/test/contract'],
    },
    {
      ...common,
      displayName: 'cluster',
      roots: ['<rootDir>/test/cluster', '<rootDir>/test/operator', '<rootDir>/test/chart', '<rootDir>/test/observability', '<rootDir>/test/e2e'],
      globalSetup: '<rootDir>/test/harness/global-setup.ts',
      globalTeardown: '<rootDir>/test/harness/global-teardown.ts',
    },
  ],
};
