import { defineConfig } from "vitest/config";

// lib tests run in node; widget view tests opt into happy-dom with a
// `// @vitest-environment happy-dom` comment at the top of the file.
export default defineConfig({
  test: {
    include: ["tests/**/*.test.js"],
    environment: "node",
  },
});
