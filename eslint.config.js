import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// The layers of src (README, "How the code is laid out"); import cycles are checked by scripts/check-cycles.mjs.
const TRANSPORT_PACKAGES = [
  'socket.io',
  'socket.io-*',
  'ws',
  '@nestjs/websockets',
  '@nestjs/microservices',
  '@nestjs/platform-*',
  'express',
  'http',
  'node:http',
  'https',
  'node:https',
];
const INFRASTRUCTURE_LAYERS = [
  '**/auth/**',
  '**/metrics/**',
  '**/redis/**',
  '**/presence/**',
  '**/persistence/**',
  '**/events/**',
  '**/lifecycle/**',
  '**/logging/**',
  '**/hooks/**',
  '**/retention/**',
  '**/tracing/**',
];
const TRANSPORT_LAYERS = ['**/realtime/**', '**/http/**', '**/web/**', '**/commands/**', '**/health/**'];
const COMPOSITION = ['**/main.js', '**/app.module.js', '**/migrate.js'];
const TESTS = ['src/**/*.test.ts', 'src/**/*.test-support.ts'];
const LOWER_LAYER = 'A lower layer must not import an upper one (domain < infrastructure < transports < composition).';

export default tseslint.config(
  { ignores: ['dist/', 'client/dist/', '.test-build/', 'node_modules/', 'data/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    // Lets consistent-type-imports see that Nest's DI reads constructor parameter types at run time.
    languageOptions: { parserOptions: { emitDecoratorMetadata: true, experimentalDecorators: true } },
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The chat domain knows nothing of transports nor of the layers that serve it: it sees only its ports.
    files: ['src/chat/**/*.ts'],
    ignores: TESTS,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: TRANSPORT_PACKAGES, message: 'The chat domain must not import a transport.' },
            {
              group: [...TRANSPORT_LAYERS, ...INFRASTRUCTURE_LAYERS, ...COMPOSITION],
              message: 'The chat domain depends only on its ports.',
            },
          ],
        },
      ],
    },
  },
  {
    // A unit test wires real pieces of several layers; the chat domain's tests still use no transport.
    files: ['src/chat/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: TRANSPORT_PACKAGES, message: 'The chat domain must not import a transport.' }] },
      ],
    },
  },
  {
    // Layers: domain (chat, common, config) < infrastructure < transports < composition. A layer imports only those below it.
    files: ['src/common/**/*.ts', 'src/config/**/*.ts'],
    ignores: TESTS,
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: [...TRANSPORT_LAYERS, ...INFRASTRUCTURE_LAYERS, ...COMPOSITION], message: LOWER_LAYER }] },
      ],
    },
  },
  {
    files: INFRASTRUCTURE_LAYERS.map((l) => `src/${l.slice(3, -3)}/**/*.ts`),
    ignores: TESTS,
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: [...TRANSPORT_LAYERS, ...COMPOSITION], message: LOWER_LAYER }] }],
    },
  },
  {
    files: TRANSPORT_LAYERS.map((l) => `src/${l.slice(3, -3)}/**/*.ts`),
    ignores: TESTS,
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: COMPOSITION, message: LOWER_LAYER }] }] },
  },
  {
    // Configuration is read and validated once, where the process starts (config/ parses what main.ts hands it).
    files: ['src/**/*.ts'],
    ignores: [...TESTS, 'src/main.ts', 'src/migrate.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Only main.ts and migrate.ts read the environment; take configuration from AppConfig.',
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'src/**/*.test.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  {
    files: ['scripts/**/*.mjs', 'examples/**/*.mjs', 'eslint.config.js'],
    languageOptions: { globals: globals.node },
  },
  {
    // The chat page: browser modules served as they are.
    files: ['public/**/*.js'],
    languageOptions: { globals: globals.browser, sourceType: 'module' },
  },
);
