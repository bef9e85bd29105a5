// Property tests of the model validators: validation is idempotent on its own output
// (validate(serialize(validate(x))) equals validate(x)), and arbitrary input never crashes a
// validator: it either returns or throws a ProvisioError with a stable code.
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  ProvisioError,
  parseJsonBody,
  validateAllocationRequest,
  validateAllocationResponse,
  validateAttestationMechanism,
  validateBulkEnrollmentGroupOperation,
  validateBulkEnrollmentOperation,
  validateDeviceRegistration,
  validateDeviceRegistrationResult,
  validateEnrollmentGroup,
  validateIndividualEnrollment,
  validateInitialTwin,
  validateJsonObject,
  validateQuerySpecification,
  validateRegistrationOperationStatus,
  validateTwinCollection,
} from '../src/index.js'
import { base64Length } from '../src/models/_check.js'
import { base64Decode, base64Encode } from '@provisio/crypto'

const VALIDATORS: Record<string, (json: unknown) => unknown> = {
  validateIndividualEnrollment,
  validateEnrollmentGroup,
  validateAttestationMechanism,
  validateInitialTwin,
  validateTwinCollection,
  validateJsonObject,
  validateBulkEnrollmentOperation,
  validateBulkEnrollmentGroupOperation,
  validateQuerySpecification,
  validateDeviceRegistration,
  validateDeviceRegistrationResult,
  validateRegistrationOperationStatus,
  validateAllocationRequest,
  validateAllocationResponse,
}

const idChar = fc.constantFrom(...'abcXYZ019-._:')
const registrationId = fc
  .tuple(fc.string({ unit: idChar, maxLength: 20 }), fc.constantFrom('a', 'Z', '7', '-'))
  .map(([s, last]) => s + last)
const base64Key = fc.uint8Array({ minLength: 16, maxLength: 64 }).map((b) => Buffer.from(b).toString('base64'))
const hostName = fc
  .array(fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/), { minLength: 1, maxLength: 4 })
  .map((labels) => labels.join('.'))
// eslint-disable-next-line no-control-regex -- mirrors the IoT Hub twin key rule under test
const twinKey = fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !/[\x00-\x1f\x7f-\x9f.$ ]/.test(k))
const twinValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 10 }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(twinKey, tie('value'), { maxKeys: 3 }),
  ),
})).value
const twinCollection = fc.dictionary(
  twinKey.filter((k) => k !== 'version' && k !== 'count' && k !== 'metadata'),
  twinValue,
  { maxKeys: 4 },
)

const attestation = fc.oneof(
  fc.record({ type: fc.constant('symmetricKey'), symmetricKey: fc.record({ primaryKey: base64Key, secondaryKey: base64Key }, { requiredKeys: [] }) }),
  fc.record({ type: fc.constant('tpm'), tpm: fc.record({ endorsementKey: base64Key }) }),
  fc.record({ type: fc.constant('none') }),
)

const enrollment = fc.record(
  {
    registrationId,
    attestation,
    provisioningStatus: fc.constantFrom('enabled', 'disabled', 'ENABLED'),
    allocationPolicy: fc.constantFrom('hashed', 'GeoLatency'),
    iotHubs: fc.uniqueArray(hostName, { maxLength: 5, selector: (h) => h.toLowerCase() }),
    reprovisionPolicy: fc.record({ updateHubAssignment: fc.boolean(), migrateDeviceData: fc.boolean() }, { requiredKeys: [] }),
    initialTwin: fc.record({ tags: twinCollection, properties: fc.record({ desired: twinCollection }, { requiredKeys: [] }) }, { requiredKeys: [] }),
    capabilities: fc.record({ iotEdge: fc.boolean() }),
    extra: fc.anything(),
  },
  { requiredKeys: ['registrationId', 'attestation'] },
)

describe('validate ∘ serialize is stable', () => {
  it('individual enrollments', () => {
    fc.assert(
      fc.property(enrollment, (input) => {
        const once = validateIndividualEnrollment(input)
        const twice = validateIndividualEnrollment(JSON.parse(JSON.stringify(once)))
        expect(twice).toEqual(once)
        expect('extra' in once).toBe(false)
      }),
      { numRuns: 300 },
    )
  })

  it('device registration bodies', () => {
    fc.assert(
      fc.property(
        fc.record({ registrationId, payload: fc.dictionary(fc.string({ maxLength: 6 }), twinValue, { maxKeys: 4 }) }, { requiredKeys: [] }),
        (input) => {
          const once = validateDeviceRegistration(input)
          expect(validateDeviceRegistration(parseJsonBody(JSON.stringify(once)))).toEqual(once)
        },
      ),
      { numRuns: 300 },
    )
  })
})

function expectTypedFailureOrSuccess(validate: (json: unknown) => unknown, input: unknown): void {
  try {
    validate(input)
  } catch (error) {
    if (!(error instanceof ProvisioError)) throw error
    expect(['VALIDATION_FAILED', 'INVALID_JSON', 'PAYLOAD_TOO_LARGE']).toContain(error.code)
    expect(error.message.length).toBeGreaterThan(0)
  }
}

describe('random input never crashes a validator', () => {
  for (const [name, validate] of Object.entries(VALIDATORS)) {
    it(name, () => {
      fc.assert(
        fc.property(fc.oneof(fc.jsonValue(), fc.anything()), (input) => expectTypedFailureOrSuccess(validate, input)),
        { numRuns: 300 },
      )
    })
  }

  it('mutated valid enrollments', () => {
    // Replace one member of a valid enrollment with random JSON: a crash would surface here.
    const keys = ['registrationId', 'attestation', 'deviceId', 'initialTwin', 'iotHubs', 'capabilities', 'reprovisionPolicy', 'allocationPolicy', 'customAllocationDefinition', 'registrationState', 'optionalDeviceInformation', 'etag']
    fc.assert(
      fc.property(enrollment, fc.constantFrom(...keys), fc.jsonValue(), (e, key, value) => {
        expectTypedFailureOrSuccess(validateIndividualEnrollment, { ...e, [key]: value })
      }),
      { numRuns: 500 },
    )
  })

  it('random text through parseJsonBody', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.uint8Array().map((b) => new Uint8Array(b))), (text) => {
        expectTypedFailureOrSuccess((t) => parseJsonBody(t as string | Uint8Array, { allowEmpty: true }), text)
      }),
      { numRuns: 500 },
    )
  })
})

describe('base64 length check agrees with the strict decoder of @provisio/crypto', () => {
  const alphabet = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ '.split(''))
  it('on encodings of random bytes and on random near-base64 text', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 100 }).map((b) => base64Encode(b)),
          fc.string({ unit: alphabet, maxLength: 24 }),
          fc.uint8Array({ minLength: 1, maxLength: 30 }).map((b) => base64Encode(b).replace(/=+$/, '')),
        ),
        (text) => {
          let want = -1
          try {
            want = base64Decode(text).length
          } catch {
            want = -1
          }
          expect(base64Length(text)).toBe(want)
        },
      ),
      { numRuns: 2000 },
    )
  })
})
