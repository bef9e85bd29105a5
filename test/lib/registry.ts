/**
 * azure-iothub's Registry the way the SDK builds one, except for the transport agent: the SDK makes
 * its own `https.Agent` (port 443, system CAs, DNS) in the constructor, so we pass the constructor's
 * public `restApiClient` argument and give that client `loopbackHttpsAgent` (our port, our dev CA,
 * no DNS for hub names) through RestApiClient.setOptions, the SDK's documented hook. Requests and
 * auth (a hub-policy SAS from the connection string) are the SDK's own. Also: waiting for a desired
 * change on azure-iot-device's Twin.
 */
import type { Twin } from 'azure-iot-device'
import { Amqp as ServiceAmqp, Client as ServiceClient, Registry } from 'azure-iothub'
import { RestApiClient } from 'azure-iot-http-base'
import { buildSasToken, parseHubConnectionString } from '@provisio/protocol'
import { loopbackHttpsAgent } from './tls-plumbing.js'

type Server = { readonly port: number; readonly caPem: string }

/** The SDK's own config from a hub connection string, a REST client on it, and `make` building the SDK object; the agent goes in after `make`. */
function onLoopback<T>(server: Server, connectionString: string, make: (config: { host: string; keyName: string; sharedAccessSignature: string }, rest: RestApiClient) => T): T {
  const cs = parseHubConnectionString(connectionString)
  const config = {
    host: cs.hostName,
    keyName: cs.sharedAccessKeyName,
    sharedAccessSignature: buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt: Math.floor(Date.now() / 1000) + 3600 }),
  }
  const rest = new RestApiClient(config, 'azure-iothub/interop-test')
  const made = make(config, rest)
  // After the constructor, which gives the client its own agent.
  rest.setOptions({ http: { agent: loopbackHttpsAgent(server) } })
  return made
}

export function registryOn(server: Server, connectionString: string): Registry {
  return onLoopback(server, connectionString, (config, rest) => new Registry(config, rest as never))
}

/**
 * azure-iothub's service Client (direct methods go over its REST client, `POST /twins/{id}/methods`);
 * its AMQP transport is built as fromConnectionString builds it and never opened here.
 */
export function serviceClientOn(server: Server, connectionString: string): ServiceClient {
  return onLoopback(server, connectionString, (config, rest) => new ServiceClient(new ServiceAmqp(config as never), rest as never))
}

/** Resolves with the first desired-properties event that satisfies `test`. */
export function desiredUpdate(twin: Twin, test: (desired: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const listener = (desired: Record<string, unknown>) => {
      if (!test(desired)) return
      twin.removeListener('properties.desired', listener)
      resolve(desired)
    }
    twin.on('properties.desired', listener)
  })
}
