// The build of every library package: one ESM entry with declarations (a package with other
// entries, like @provisio/server, keeps its own tsup.config.ts).
import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
})
