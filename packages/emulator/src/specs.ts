/**
 * The spec (registration id and credential) of each device of a run, made on demand: group-key
 * devices derive their key from the group key (HMAC-SHA256 in the WebAssembly core), individual
 * devices take theirs from the list, TPM devices point at their software TPM.
 */
import { deriveDeviceKey } from '@provisio/crypto'
import type { DeviceSpec } from './fleet.js'
import type { EmulatorSettings } from './settings.js'

export function deviceSpecs(settings: EmulatorSettings): (index: number) => DeviceSpec {
  switch (settings.credential) {
    case 'group-key':
      return (index) => {
        const registrationId = `${settings.registrationIdPrefix}${index}`
        return { index, registrationId, credential: { kind: 'symmetric-key', key: deriveDeviceKey(settings.groupKey, registrationId) } }
      }
    case 'individual-keys':
      return (index) => {
        const entry = settings.individualKeys[index]
        if (entry === undefined) throw new RangeError(`no device ${index} in the key list`)
        return { index, registrationId: entry.registrationId, credential: { kind: 'symmetric-key', key: entry.key } }
      }
    case 'tpm':
      return (index) => ({ index, registrationId: `${settings.registrationIdPrefix}${index}`, credential: { kind: 'tpm', index } })
  }
}
