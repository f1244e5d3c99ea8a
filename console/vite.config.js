// The console is built into the Python package, where the controller serves
// it at /. `npm run dev` proxies the API to a controller on :8080.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "../src/voe/console/dist", emptyOutDir: true, chunkSizeWarningLimit: 2000 },
  server: { proxy: { "/api": "http://127.0.0.1:8080" } },
  test: { environment: "node" },
});
