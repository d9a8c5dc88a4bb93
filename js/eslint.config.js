// ESLint flat config for the front end: `npm run lint` (zero findings expected; CI runs it).
// Widget code runs in the browser, the build script in node, the tests in vitest (node or happy-dom).
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "dist/", "coverage/"] },
  js.configs.recommended,
  {
    files: ["**/*.js", "**/*.mjs"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // `catch (_)` and unused `_args` are deliberate
      "no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_" }],
    },
  },
  { files: ["src/**/*.js", "lib/**/*.js"], languageOptions: { globals: { ...globals.browser } } },
  { files: ["build.mjs", "eslint.config.js", "vitest.config.js"], languageOptions: { globals: { ...globals.node } } },
  { files: ["tests/**/*.js"], languageOptions: { globals: { ...globals.browser, ...globals.node } } },
];
