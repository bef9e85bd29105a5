/**
 * Software TPMs made in the page (@provisio/tpm). Each device's TPM is seeded from the run's
 * registration-id prefix and its index, so a reload makes the same endorsement keys again and the
 * enrollments made for them stay valid. The operator enrolls them with the list `enrollments()`
 * gives (registration id + EK), then starts the fleet.
 *
 * These are emulators, not key stores: anyone who knows the prefix can make the same TPM.
 */
import { base64Encode, sha256 } from '@provisio/crypto'
import { SoftwareTpm, TpmDevice } from '@provisio/tpm'

export interface TpmEnrollment {
  readonly registrationId: string
  /** Base64 TPM2B_PUBLIC of the EK, as an individual enrollment's `attestation.tpm.endorsementKey`. */
  readonly endorsementKey: string
}

/** The seed of device `index`'s TPM (32 bytes). */
export function tpmSeed(prefix: string, index: number): Uint8Array {
  return sha256(new TextEncoder().encode(`provisio-emulator-tpm:${prefix}:${index}`))
}

export class TpmPool {
  readonly #devices = new Map<number, { registrationId: string; device: TpmDevice; ek: Uint8Array }>()

  constructor(readonly prefix: string) {}

  get size(): number {
    return this.#devices.size
  }

  /** Makes (or returns) the TPM of device `index`, its EK and SRK created. */
  make(index: number): TpmDevice {
    const found = this.#devices.get(index)
    if (found !== undefined) return found.device
    const device = new TpmDevice(new SoftwareTpm({ seed: tpmSeed(this.prefix, index) }))
    const ek = device.endorsementKey()
    device.storageRootKey()
    this.#devices.set(index, { registrationId: `${this.prefix}${index}`, device, ek })
    return device
  }

  /** The TPM of device `index`; throws when it was not made yet. */
  get(index: number): TpmDevice {
    const found = this.#devices.get(index)
    if (found === undefined) throw new Error(`the software TPM of device ${index} was not made (press "Make TPMs" first)`)
    return found.device
  }

  /**
   * Makes the TPMs of devices 0…count-1, yielding between them (`pause`) so a page stays
   * responsive; `progress` is told after each one.
   */
  async makeAll(count: number, pause: () => Promise<void>, progress?: (done: number) => void, signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < count; i++) {
      if (signal?.aborted === true) throw new Error('stopped')
      this.make(i)
      progress?.(i + 1)
      await pause()
    }
  }

  /** What to enroll: one individual enrollment per TPM made. */
  enrollments(): TpmEnrollment[] {
    return [...this.#devices.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, d]) => ({ registrationId: d.registrationId, endorsementKey: base64Encode(d.ek) }))
  }
}
