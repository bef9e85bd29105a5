/**
 * Rules of the device endpoint that do not depend on sockets: which connection a client id owns
 * (MQTT-3.1.4-2, the take-over rule) and whether the TLS SNI and the CONNECT username agree on
 * the hub. The server's MQTT adapter applies them; the sessions themselves live in the codecs.
 */
import { ProvisioError, type HubDeviceApi } from '@provisio/protocol'

/** A connection the table can end when a newer one takes its client id over. */
export interface ClaimableConnection {
  end(code: 'TAKEN_OVER', reason: string): void
}

/**
 * One connection per client (MQTT-3.1.4-2): a new CONNECT with the same client key (DPS: the
 * registration id in its ID scope; hub: the device id on its hub) ends the older connection.
 */
export class ClientTable<S extends ClaimableConnection> {
  readonly #byClient = new Map<string, S>()

  /** `session` now owns `key`; the previous owner, if any, is ended. The claim lapses when `closed` settles. */
  claim(key: string, session: S, closed: Promise<void>): void {
    const previous = this.#byClient.get(key)
    this.#byClient.set(key, session)
    if (previous !== undefined && previous !== session) previous.end('TAKEN_OVER', 'a newer connection CONNECTed with the same clientId (MQTT-3.1.4-2)')
    void closed.then(() => {
      if (this.#byClient.get(key) === session) this.#byClient.delete(key)
    })
  }

  get(key: string): S | undefined {
    return this.#byClient.get(key)
  }
}

/** The client key of a hub device connection (host names and device ids are case-insensitive). */
export function hubClientKey(hostName: string, deviceId: string): string {
  return `hub\u0000${hostName.toLowerCase()}\u0000${deviceId.toLowerCase()}`
}

/** The client key of a DPS device connection (registration ids are case-insensitive). */
export function dpsClientKey(idScope: string, registrationId: string): string {
  return `dps\u0000${idScope}\u0000${registrationId.toLowerCase()}`
}

/**
 * The hub is the one the username names (the SAS is signed over it). When the TLS SNI names
 * another embedded hub, the device dialled one hub and claims another: refused with both names.
 */
export function sniChecked(api: HubDeviceApi, serverName: string | undefined, isHub: (hostName: string) => boolean): HubDeviceApi {
  if (serverName === undefined || !isHub(serverName)) return api
  return {
    ...api,
    authenticate: (request) => {
      if (request.hostName.toLowerCase() !== serverName.toLowerCase()) {
        return Promise.reject(
          new ProvisioError('SAS_WRONG_RESOURCE', `TLS SNI names hub ${JSON.stringify(serverName)}, but the CONNECT username names hub ${JSON.stringify(request.hostName)}`),
        )
      }
      return api.authenticate(request)
    },
  }
}
