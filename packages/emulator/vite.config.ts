// Vite build of the emulator page. `base` is where `provisio serve` serves it (/emulator/); the
// dev server (`npm run dev`) serves the same path on http://localhost:5173/emulator/. Workspace
// packages are compiled from their TypeScript sources (the "source" export condition).
import { defineConfig } from 'vite'
import { defaultClientConditions } from 'vite'

export default defineConfig({
  base: '/emulator/',
  resolve: { conditions: ['source', ...defaultClientConditions] },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 2048,
  },
  server: { port: 5173, strictPort: true, open: false },
  preview: { port: 4173 },
})
