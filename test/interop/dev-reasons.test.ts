// Development reasons (packages/server/src/dev-reasons.ts) with Microsoft's own provisioning
// clients over real TLS on loopback: a device with no enrollment is refused as before — the same
// status, errorCode and error the clients make of it — and the refusal's message carries the
// engine's reason. MQTT and AMQP accept the connection in this mode and refuse at the register,
// where the body has room for the text (a CONNACK and a sasl-outcome have none).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProvisioningDeviceClient } from 'azure-iot-provisioning-device'
import { Http } from 'azure-iot-provisioning-device-http'
import { Mqtt } from 'azure-iot-provisioning-device-mqtt'
import { Amqp } from 'azure-iot-provisioning-device-amqp'
import { MqttBase } from 'azure-iot-mqtt-base'
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key'
import { startTestServer, type TestServer } from '../lib/server.js'
import { trustCaOnPort } from '../lib/tls-plumbing.js'

let server: TestServer
const GROUP_KEY = Buffer.alloc(64, 0x51).toString('base64')
const WRONG_KEY = Buffer.alloc(32, 0x13).toString('base64')

/** What Microsoft's client hands the application for a refused registration. */
interface RefusalSeen {
  name: string
  message: string
  /** MQTT: the parsed body. */
  result?: unknown
  /** HTTP: the body as received. */
  responseBody?: string
}

function registerRefused(transport: 'http' | 'mqtt' | 'amqp', registrationId: string): Promise<RefusalSeen> {
  const security = new SymmetricKeySecurityClient(registrationId, WRONG_KEY) as never
  const { idScope, ports } = server.endpoints
  let client: ReturnType<typeof ProvisioningDeviceClient.create>
  if (transport === 'http') client = ProvisioningDeviceClient.create('localhost', idScope, new Http() as never, security)
  else if (transport === 'amqp') client = ProvisioningDeviceClient.create(`localhost:${ports.amqp}`, idScope, new Amqp() as never, security)
  else {
    const base = new MqttBase()
    base.setOptions({ ca: server.caPem } as never)
    client = ProvisioningDeviceClient.create(`localhost:${ports.mqtt}`, idScope, new Mqtt(base as never) as never, security)
  }
  return new Promise((resolve, reject) => {
    client.register((err?: Error) => (err ? resolve(err as unknown as RefusalSeen) : reject(new Error(`${registrationId} was assigned`))))
  })
}

/** The DPS error body a client kept (HTTP and AMQP hand it over as text, MQTT parsed). */
function body(result: unknown): { errorCode?: number; message?: string; trackingId?: string } {
  return (typeof result === 'string' ? JSON.parse(result) : result) as { errorCode?: number; message?: string; trackingId?: string }
}

beforeAll(async () => {
  server = await startTestServer({ devReasons: true })
  server.useAsDefaultHttpsAgent()
  await server.engine.createOrUpdateEnrollmentGroup(server.endpoints.idScope, {
    enrollmentGroupId: 'reasons-group',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: GROUP_KEY } },
  })
})

afterAll(async () => {
  await server?.stop()
})

const REASON = (id: string) =>
  `Unauthorized (development reason: no individual enrollment '${id}' in ID scope ${server.endpoints.idScope}, and no device key derived from the 1 symmetric-key group(s) (reasons-group) verifies the token)`

describe('--dev-reasons with Microsoft\'s provisioning clients', () => {
  it('HTTP: 401 with errorCode 401002, a trackingId, and the reason in the message', async () => {
    const seen = await registerRefused('http', 'reasons-http')
    expect(seen.name).toBe('UnauthorizedError')
    expect(body(seen.responseBody)).toMatchObject({ errorCode: 401002, message: REASON('reasons-http'), trackingId: expect.stringMatching(/^[0-9a-f-]{36}$/) })
  })

  it('MQTT: CONNECT accepted, the register answered 401 on the response topic with the reason', async () => {
    const seen = await registerRefused('mqtt', 'reasons-mqtt')
    expect(seen.name).toBe('UnauthorizedError')
    expect(body(seen.result)).toMatchObject({ errorCode: 401002, message: REASON('reasons-mqtt') })
    expect(await server.metrics.responses.get(['mqtt', 'register', '401'])).toBe(1)
  })

  it('AMQP: SASL accepted, the register delivery rejected with amqp:unauthorized-access and the body carrying the reason', async () => {
    // Only for this client: the patch of tls.connect (the AMQP transport passes no CA) is not for the HTTP client's calls.
    const restoreTls = trustCaOnPort(server.endpoints.ports.amqp, server.caPem)
    const seen = await registerRefused('amqp', 'reasons-amqp').finally(restoreTls)
    // This client hands over the rejected outcome's error as rhea decoded it: [condition, description].
    const [condition, description] = (seen as unknown as { value: { value: string }[] }).value
    expect(condition!.value).toBe('amqp:unauthorized-access')
    expect(body(description!.value)).toMatchObject({ errorCode: 401002, message: REASON('reasons-amqp') })
    expect(await server.metrics.responses.get(['amqp', 'register', '401'])).toBe(1)
  })
})
