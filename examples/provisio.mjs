// What every example needs from a running `provisio serve`: its endpoints.json (ID scope, ports,
// connection strings, CA), Node trusting its CA, and Microsoft's HTTP clients pointed at its port.
import https from 'node:https'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

/** Stops the example with a message on stderr. */
export function fail(message) {
  process.stderr.write(`${message}\n`)
  process.exit(1)
}

/**
 * The server's endpoints.json, from PROVISIO_DATA_DIR (default ./.provisio, where `npm start` and
 * `provisio serve` keep it). Node must trust the server's CA before it starts: NODE_EXTRA_CA_CERTS
 * is read once, at start-up, by every TLS connection of the process (MQTT, AMQP, HTTPS).
 */
export function endpoints() {
  const file = join(resolve(process.env.PROVISIO_DATA_DIR ?? '.provisio'), 'endpoints.json')
  let e
  try {
    e = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    fail(`cannot read ${file} (${error.message}): start \`npx provisio serve\` first, or set PROVISIO_DATA_DIR to its --data-dir`)
  }
  if (!process.env.NODE_EXTRA_CA_CERTS) fail(`Node must trust the server's CA; run:\n  export NODE_EXTRA_CA_CERTS=${e.caCertificate}`)
  return e
}

/**
 * Microsoft's HTTP clients (the provisioning Http transport, ProvisioningServiceClient, the
 * iothub Registry) always dial port 443 of the host name: an https agent whose defaultPort is the
 * server's HTTPS port, made Node's default agent, sends them there unmodified.
 */
export function useHttpsPort(port) {
  const agent = new https.Agent({ keepAlive: true, timeout: 5_000 })
  agent.defaultPort = port
  https.globalAgent = agent
  return agent
}

/** Promise of a Node-style callback API (the SDK's register and open). */
export function call(fn) {
  return new Promise((resolvePromise, reject) => fn((error, result) => (error ? reject(error) : resolvePromise(result))))
}
