/**
 * The fleet's driver on @provisio/device: one ProvisioningClient per device over the chosen
 * transport, with a symmetric key or the device's software TPM; refusals by the service are
 * reported as `failed` / `disabled` with the DPS error code, anything else (socket, TLS, timeout)
 * is thrown and counted as an error. An assigned device then connects to its hub over MQTT over
 * WebSockets (the only hub transport a page can open), on the same port, with the same
 * credential (a TPM device signs with the hub key its registration activated), and reads its twin;
 * in stay-connected runs it keeps that connection (desired changes, direct methods, telemetry) until Stop.
 */
import { ProvisioningClient, connectHub, isDeviceError, softwareTpm, symmetricKey, tpm, type DeviceTwinDocument, type HubClient } from '@provisio/device/browser'
import type { DeviceDriver, DeviceSpec, HubSession, ProvisionResult } from './fleet.js'
import type { EmulatorSettings } from './settings.js'
import type { TpmPool } from './tpms.js'

/** Deadline of one device's registration (polls and retries included). */
const REGISTER_TIMEOUT_MS = 120_000
/** Longest wait for the hub connection. */
const HUB_CONNECT_TIMEOUT_MS = 30_000
/** Longest wait for the twin once connected. */
const TWIN_TIMEOUT_MS = 30_000

export interface DriverContext {
  /** The page's software TPMs (TPM runs). */
  readonly tpms?: TpmPool | undefined
}

export function createDriver(settings: EmulatorSettings, context: DriverContext): DeviceDriver {
  const security = (device: DeviceSpec) => {
    if (device.credential.kind === 'symmetric-key') return symmetricKey({ registrationId: device.registrationId, key: device.credential.key })
    if (context.tpms === undefined) throw new Error('no software TPMs were made for this run')
    return tpm({ tpm: softwareTpm(context.tpms.get(device.credential.index).tpm), registrationId: device.registrationId })
  }
  return {
    async provision(device, signal, note): Promise<ProvisionResult> {
      const client = new ProvisioningClient(
        {
          idScope: settings.idScope,
          transport: settings.transport,
          globalEndpoint: settings.host,
          port: settings.port,
          security: security(device),
          timeoutMs: REGISTER_TIMEOUT_MS,
        },
        { onRetry: ({ attempt, delayMs, error }) => note(`retry ${attempt} in ${Math.round(delayMs)} ms: ${error.message}`) },
      )
      try {
        const result = await client.register({ signal })
        note(`${result.requests} request(s), ${result.retries} retried, over ${result.transport}`)
        return { status: 'assigned', assignedHub: result.assignedHub, deviceId: result.deviceId, ...(result.substatus === undefined ? {} : { substatus: result.substatus }) }
      } catch (error) {
        if (isDeviceError(error)) {
          const reason = error.serverMessage ?? error.message
          const code = error.errorCode ?? error.code
          if (error.code === 'REGISTRATION_DISABLED') return { status: 'disabled', errorCode: code, reason }
          if (error.code === 'REFUSED' || error.code === 'REGISTRATION_FAILED') return { status: 'failed', errorCode: code, reason }
        }
        throw error
      }
    },

    async readTwin(device, result, signal): Promise<DeviceTwinDocument> {
      const hub = await openHub(device, result, signal)
      try {
        return await twinWithin(hub, signal)
      } finally {
        await hub.close()
      }
    },

    async connect(device, result, signal): Promise<HubSession> {
      const hub = await openHub(device, result, signal)
      let twin: DeviceTwinDocument
      try {
        twin = await twinWithin(hub, signal)
      } catch (error) {
        await hub.close()
        throw error
      }
      let closing = false
      return {
        twin,
        onDesired: (listener) => void hub.onDesired(listener),
        onMethod: (handler) => void hub.onMethod('*', (request) => handler(request.methodName, request.payload)),
        onDisconnect: (listener) => void hub.onDisconnect((error) => (closing ? undefined : listener(error.message))),
        sendTelemetry: (body) => hub.sendTelemetry(body),
        close: () => {
          closing = true
          return hub.close()
        },
      }
    },
  }

  function openHub(device: DeviceSpec, result: AssignedResult, signal: AbortSignal): Promise<HubClient> {
    return connectHub({
      hostName: result.assignedHub,
      deviceId: result.deviceId,
      security: security(device),
      transport: 'mqtt-ws',
      port: settings.port,
      connectTimeoutMs: HUB_CONNECT_TIMEOUT_MS,
      signal,
    })
  }
}

type AssignedResult = Extract<ProvisionResult, { status: 'assigned' }>

/** The device's twin, or an error when the hub does not answer within TWIN_TIMEOUT_MS or the run is stopped. */
async function twinWithin(hub: HubClient, signal: AbortSignal): Promise<DeviceTwinDocument> {
  let timer: ReturnType<typeof setTimeout> | undefined
  let onAbort: (() => void) | undefined
  const giveUp = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the hub did not answer the twin request within ${TWIN_TIMEOUT_MS / 1000} s`)), TWIN_TIMEOUT_MS)
    onAbort = () => reject(new Error('stopped'))
    signal.addEventListener('abort', onAbort, { once: true })
  })
  giveUp.catch(() => undefined)
  try {
    return await Promise.race([hub.getTwin(), giveUp])
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort!)
  }
}
