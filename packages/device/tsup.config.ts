// Two entries: the Node one (node:https, TLS sockets, ws) and the browser one (fetch, WebSocket,
// rhea's UMD build), sharing chunks of the transport-neutral core.
import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src/index.ts', 'src/browser.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
})
