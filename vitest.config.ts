import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    typecheck: {
      enabled: true,
      tsconfig: "./tsconfig.check.json",
      include: ["test/**/*.test-d.ts"],
    },
  },
});
