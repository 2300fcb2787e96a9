// Tests run from TypeScript sources through SWC (no type check here: `make typecheck` does that).
// ESM throughout, so jest runs with --experimental-vm-modules (see package.json "test").
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/operator', '<rootDir>/runtime', '<rootDir>/test', '<rootDir>/tools'],
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' } }],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  globalSetup: '<rootDir>/test/harness/global-setup.ts',
  globalTeardown: '<rootDir>/test/harness/global-teardown.ts',
  testTimeout: 60000,
};
