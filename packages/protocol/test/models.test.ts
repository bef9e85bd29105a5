// Table-driven tests of the DPS model validators (docs/protocol.md §1, §7, §8): each valid fixture
// checks the typed value (defaults applied, unknown members dropped), each invalid fixture the
// JSON path and the rule named by the error.
import { describe, expect, it } from 'vitest'
import {
  ProvisioError,
  parseJsonBody,
  locateJsonError,
  validateAllocationPolicy,
  validateAllocationRequest,
  validateAllocationResponse,
  validateAttestationMechanism,
  validateBulkEnrollmentGroupOperation,
  validateBulkEnrollmentOperation,
  validateBulkEnrollmentOperationResult,
  validateBulkEnrollmentGroupOperationResult,
  validateCustomAllocationDefinition,
  validateDeviceCapabilities,
  validateDeviceRegistration,
  validateDeviceRegistrationResult,
  readRegisterBody,
  MAX_REGISTER_BODY_BYTES,
  validateDeviceRegistrationState,
  validateEnrollmentGroup,
  validateIndividualEnrollment,
  validateInitialTwin,
  validateJsonObject,
  validateQuerySpecification,
  validateRegistrationOperationStatus,
  validateReprovisionPolicy,
  validateTwinCollection,
  validateX509CertificateInfo,
  acceptApiVersion,
  compareApiVersions,
  DEVICE_API_VERSIONS,
} from '../src/index.js'

const b64 = (n: number, fill = 7): string => Buffer.alloc(n, fill).toString('base64')
const KEY32 = b64(32)
const KEY64 = b64(64, 9)
const INFO = {
  subjectName: 'CN=dev1',
  sha1Thumbprint: 'AB'.repeat(20),
  sha256Thumbprint: 'CD'.repeat(32),
  issuerName: 'CN=ca',
  notBeforeUtc: '2024-01-01T00:00:00Z',
  notAfterUtc: '2034-01-01T00:00:00.0000000Z',
  serialNumber: '01A2',
  version: 3,
}
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n'

/** Runs `fn`, expecting a VALIDATION_FAILED naming `field` with a rule containing `rule`. */
function expectInvalid(fn: () => unknown, field: string, rule: string | RegExp): void {
  let thrown: unknown
  try {
    fn()
  } catch (error) {
    thrown = error
  }
  expect(thrown, `expected a failure at ${field}`).toBeInstanceOf(ProvisioError)
  const err = thrown as ProvisioError
  expect(err.code).toBe('VALIDATION_FAILED')
  expect(err.errorCode).toBe(400003)
  expect(err.httpStatus).toBe(400)
  expect(err.info?.field).toBe(field)
  if (typeof rule === 'string') expect(err.info?.rule).toContain(rule)
  else expect(err.info?.rule).toMatch(rule)
  expect(err.message).toContain(field === '' ? '(body)' : field)
}

/** {a: {b: … leaf}} */
function nest(keys: string, leaf: unknown): unknown {
  let v = leaf
  for (const k of [...keys].reverse()) v = { [k]: v }
  return v
}

type Case = [name: string, input: unknown, field: string, rule: string | RegExp]

function table(validate: (json: unknown) => unknown, cases: Case[]): void {
  it.each(cases)('rejects %s', (_name, input, field, rule) => expectInvalid(() => validate(input), field, rule))
}

// ---------------------------------------------------------------------------------------------

describe('validateIndividualEnrollment', () => {
  const base = { registrationId: 'dev-1', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY32, secondaryKey: KEY64 } } }

  it('applies DPS defaults and drops unknown members', () => {
    const e = validateIndividualEnrollment({ ...base, bogus: 1, deviceId: null })
    expect(e).toEqual({
      registrationId: 'dev-1',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY32, secondaryKey: KEY64 } },
      capabilities: { iotEdge: false },
      provisioningStatus: 'enabled',
      reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: true },
    })
  })

  it('keeps every documented member and normalises enum casing', () => {
    const input = {
      registrationId: 'Dev.2_x:y-',
      deviceId: "dev$2'(x)",
      attestation: { type: 'TPM', tpm: { endorsementKey: b64(314), storageRootKey: b64(280) }, x509: { junk: 1 } },
      capabilities: { iotEdge: true },
      iotHubHostName: 'hub1.azure-devices.net',
      initialTwin: { tags: { floor: 3, a: { b: [1, 'x'] } }, properties: { desired: { fw: '1.2', version: 4 }, reported: { x: 1 } } },
      etag: '"61008d46-0000-0100-0000-5e8fe3d10000"',
      provisioningStatus: 'Disabled',
      reprovisionPolicy: { updateHubAssignment: false },
      createdDateTimeUtc: '2020-04-10T03:11:13.0276997Z',
      lastUpdatedDateTimeUtc: '2020-04-10T03:11:13+01:00',
      allocationPolicy: 'GeoLatency',
      iotHubs: ['hub1.azure-devices.net', 'localhost:8443'],
      optionalDeviceInformation: { model: 'x1', version: 1, metadata: { lastUpdated: '2024-01-01T00:00:00Z' } },
      registrationState: { registrationId: 'Dev.2_x:y-', status: 'assigned', assignedHub: 'hub1.azure-devices.net', substatus: 'initialAssignment' },
    }
    const e = validateIndividualEnrollment(input)
    expect(e.attestation).toEqual({ type: 'tpm', tpm: input.attestation.tpm })
    expect(e.provisioningStatus).toBe('disabled')
    expect(e.allocationPolicy).toBe('geoLatency')
    expect(e.reprovisionPolicy).toEqual({ updateHubAssignment: false, migrateDeviceData: true })
    expect(e.initialTwin).toEqual({ tags: input.initialTwin.tags, properties: { desired: { fw: '1.2', version: 4 } } })
    expect(e.iotHubs).toEqual(input.iotHubs)
    expect(e.deviceId).toBe("dev$2'(x)")
    expect(e.registrationState?.status).toBe('assigned')
    expect(e.optionalDeviceInformation).toEqual(input.optionalDeviceInformation)
  })

  it('creates an empty symmetricKey when keys are to be generated', () => {
    expect(validateIndividualEnrollment({ registrationId: 'a', attestation: { type: 'symmetricKey' } }).attestation).toEqual({
      type: 'symmetricKey',
      symmetricKey: {},
    })
  })

  it('accepts custom and static allocation with their companions', () => {
    const custom = validateIndividualEnrollment({
      ...base,
      allocationPolicy: 'custom',
      customAllocationDefinition: { webhookUrl: 'https://fn.example.net/api/alloc?code=abc', apiVersion: '2021-10-01' },
    })
    expect(custom.customAllocationDefinition?.apiVersion).toBe('2021-10-01')
    const stat = validateIndividualEnrollment({ ...base, allocationPolicy: 'Static', iotHubs: ['h.example'], iotHubHostName: 'H.example' })
    expect(stat.allocationPolicy).toBe('static')
    // Azure accepts static with no hub named (docs/protocol.md §13.4), for groups too.
    expect(validateIndividualEnrollment({ ...base, allocationPolicy: 'static' }).allocationPolicy).toBe('static')
    expect(validateIndividualEnrollment({ ...base, allocationPolicy: 'static', iotHubs: [] }).iotHubs).toEqual([])
    expect(validateEnrollmentGroup({ enrollmentGroupId: 'g', attestation: { type: 'symmetricKey' }, allocationPolicy: 'static' }).allocationPolicy).toBe('static')
  })

  it('prefixes paths given by the caller', () => {
    expectInvalid(() => validateIndividualEnrollment({ registrationId: 'a' }, { path: 'enrollments[4]' }), 'enrollments[4].attestation', 'is required')
  })

  table(validateIndividualEnrollment, [
    ['a non-object body', [], '', 'must be a JSON object, got an array'],
    ['a missing registrationId', { attestation: { type: 'none' } }, 'registrationId', 'is required'],
    ['a bad registrationId', { ...base, registrationId: 'dev 1' }, 'registrationId', "contains ' ' (U+0020)"],
    ['a registrationId ending in "."', { ...base, registrationId: 'dev.' }, 'registrationId', 'must end with'],
    ['an over-long registrationId', { ...base, registrationId: 'a'.repeat(129) }, 'registrationId', 'the limit is 128'],
    ['a bad deviceId', { ...base, deviceId: 'a#b' }, 'deviceId', "contains '#'"],
    ['a missing attestation', { registrationId: 'a' }, 'attestation', 'is required'],
    ['an unknown attestation type', { ...base, attestation: { type: 'password' } }, 'attestation.type', 'must be one of none, tpm, x509, symmetricKey'],
    ['a short primary key', { ...base, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: b64(15) } } }, 'attestation.symmetricKey.primaryKey', 'must be base64 of 16 to 64 bytes'],
    ['a long secondary key', { ...base, attestation: { type: 'symmetricKey', symmetricKey: { secondaryKey: b64(65) } } }, 'attestation.symmetricKey.secondaryKey', 'must be base64 of 16 to 64 bytes'],
    ['a non-base64 key', { ...base, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: 'not base64!!' } } }, 'attestation.symmetricKey.primaryKey', 'must be base64'],
    ['an unpadded key', { ...base, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY32.replace(/=+$/, '') } } }, 'attestation.symmetricKey.primaryKey', 'must be base64'],
    ['a numeric key', { ...base, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: 5 } } }, 'attestation.symmetricKey.primaryKey', 'got a number'],
    ['tpm without its sub-object', { ...base, attestation: { type: 'tpm' } }, 'attestation.tpm', 'is required when type is tpm'],
    ['tpm without endorsementKey', { ...base, attestation: { type: 'tpm', tpm: {} } }, 'attestation.tpm.endorsementKey', 'is required'],
    ['x509 with signing certificates', { ...base, attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: PEM } } } } }, 'attestation.x509.signingCertificates', 'individual enrollments use clientCertificates'],
    ['x509 with two forms', { ...base, attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: PEM } }, caReferences: { primary: 'ca' } } } }, 'attestation.x509', 'exactly one of'],
    ['x509 without primary', { ...base, attestation: { type: 'x509', x509: { clientCertificates: {} } } }, 'attestation.x509.clientCertificates.primary', 'is required'],
    ['x509 slot without certificate or info', { ...base, attestation: { type: 'x509', x509: { clientCertificates: { primary: {} } } } }, 'attestation.x509.clientCertificates.primary.certificate', 'is required'],
    ['x509 slot with garbage', { ...base, attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: 'hello world' } } } } }, 'attestation.x509.clientCertificates.primary.certificate', 'must be PEM, base64 of DER or base64 of PEM'],
    ['a bad provisioningStatus', { ...base, provisioningStatus: 'on' }, 'provisioningStatus', 'must be one of enabled, disabled'],
    ['a non-boolean iotEdge', { ...base, capabilities: { iotEdge: 'yes' } }, 'capabilities.iotEdge', 'must be a boolean'],
    ['a non-boolean reprovision flag', { ...base, reprovisionPolicy: { migrateDeviceData: 1 } }, 'reprovisionPolicy.migrateDeviceData', 'must be a boolean'],
    ['a bad allocationPolicy', { ...base, allocationPolicy: 'random' }, 'allocationPolicy', 'must be one of hashed, geoLatency, static, custom'],
    ['custom without definition', { ...base, allocationPolicy: 'custom' }, 'customAllocationDefinition', 'is required when allocationPolicy is custom'],
    ['a webhook that is not a URL', { ...base, customAllocationDefinition: { webhookUrl: 'ftp://x', apiVersion: '2021-10-01' } }, 'customAllocationDefinition.webhookUrl', 'absolute http(s) URL'],
    ['an old webhook apiVersion', { ...base, customAllocationDefinition: { webhookUrl: 'https://x', apiVersion: '2017-11-15' } }, 'customAllocationDefinition.apiVersion', 'must be 2018-09-01-preview or later'],
    ['static with two hubs', { ...base, allocationPolicy: 'static', iotHubs: ['a.example', 'b.example'] }, 'iotHubs', 'at most one hub'],
    ['static disagreeing with iotHubHostName', { ...base, allocationPolicy: 'static', iotHubs: ['a.example'], iotHubHostName: 'b.example' }, 'iotHubHostName', 'must equal the one hub'],
    ['a repeated hub', { ...base, iotHubs: ['a.example', 'A.EXAMPLE'] }, 'iotHubs[1]', 'must not repeat a hub'],
    ['a bad hub name', { ...base, iotHubs: ['a.example', 'under_score.example'] }, 'iotHubs[1]', 'DNS host name'],
    ['too many hubs', { ...base, iotHubs: Array.from({ length: 51 }, (_, i) => `h${i}.example`) }, 'iotHubs', 'must have 0 to 50 items'],
    ['a bad iotHubHostName', { ...base, iotHubHostName: 'https://hub' }, 'iotHubHostName', 'DNS host name'],
    ['a bad date', { ...base, createdDateTimeUtc: 'yesterday' }, 'createdDateTimeUtc', 'ISO-8601'],
    ['an etag with spaces', { ...base, etag: 'a b' }, 'etag', 'printable ASCII'],
    ['a twin key with a dot', { ...base, initialTwin: { tags: { 'a.b': 1 } } }, 'initialTwin.tags.a.b', "'.'"],
    ['a twin key with $', { ...base, initialTwin: { properties: { desired: { $x: 1 } } } }, 'initialTwin.properties.desired.$x', "'$'"],
    ['a twin nested too deep', { ...base, initialTwin: { tags: nest('abcdefghij', {}) } }, 'initialTwin.tags.a.b.c.d.e.f.g.h.i.j', 'must not nest deeper than 10 levels'],
    ['a twin string over 4 KB', { ...base, initialTwin: { tags: { a: 'é'.repeat(2049) } } }, 'initialTwin.tags.a', 'at most 4096 bytes'],
    ['a twin over 32 KB', { ...base, initialTwin: { tags: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'x'.repeat(4000)])) } }, 'initialTwin.tags', 'at most 32768 bytes'],
    ['a bad twin version', { ...base, initialTwin: { tags: { version: -1 } } }, 'initialTwin.tags.version', 'integer from 0'],
    ['bad twin metadata', { ...base, initialTwin: { tags: { metadata: { lastUpdated: 5 } } } }, 'initialTwin.tags.metadata.lastUpdated', 'must be a string'],
    ['a bad registrationState', { ...base, registrationState: { registrationId: 'dev-1', status: 'done' } }, 'registrationState.status', 'must be one of unassigned'],
  ])
})

describe('validateEnrollmentGroup', () => {
  it('accepts symmetric-key, signingCertificates and caReferences groups', () => {
    expect(validateEnrollmentGroup({ enrollmentGroupId: 'g1', attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: KEY64 } } }).attestation.type).toBe(
      'symmetricKey',
    )
    const signing = validateEnrollmentGroup({
      enrollmentGroupId: 'g2',
      attestation: { type: 'x509', x509: { signingCertificates: { primary: { info: INFO }, secondary: { certificate: PEM } } } },
    })
    expect(signing.attestation).toEqual({ type: 'x509', x509: { signingCertificates: { primary: { info: INFO }, secondary: { certificate: PEM } } } })
    const ca = validateEnrollmentGroup({ enrollmentGroupId: 'g3', attestation: { type: 'x509', x509: { caReferences: { primary: 'my-root', secondary: null } } } })
    expect(ca.attestation).toEqual({ type: 'x509', x509: { caReferences: { primary: 'my-root' } } })
    expect(ca.provisioningStatus).toBe('enabled')
  })

  table(validateEnrollmentGroup, [
    ['a missing id', { attestation: { type: 'symmetricKey' } }, 'enrollmentGroupId', 'is required'],
    ['a bad id', { enrollmentGroupId: 'g/1', attestation: { type: 'symmetricKey' } }, 'enrollmentGroupId', "contains '/'"],
    ['tpm', { enrollmentGroupId: 'g', attestation: { type: 'tpm', tpm: { endorsementKey: KEY32 } } }, 'attestation.type', 'only x509 and symmetricKey'],
    ['client certificates', { enrollmentGroupId: 'g', attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: PEM } } } } }, 'attestation.x509.clientCertificates', 'groups use signingCertificates'],
    ['a bad certificate info', { enrollmentGroupId: 'g', attestation: { type: 'x509', x509: { signingCertificates: { primary: { info: { ...INFO, version: 'v3' } } } } } }, 'attestation.x509.signingCertificates.primary.info.version', 'must be an integer'],
    ['an empty CA reference', { enrollmentGroupId: 'g', attestation: { type: 'x509', x509: { caReferences: { primary: '' } } } }, 'attestation.x509.caReferences.primary', 'must not be empty'],
  ])
})

describe('small members', () => {
  it('defaults', () => {
    expect(validateDeviceCapabilities({})).toEqual({ iotEdge: false })
    expect(validateReprovisionPolicy({})).toEqual({ updateHubAssignment: true, migrateDeviceData: true })
    expect(validateReprovisionPolicy({ updateHubAssignment: false, migrateDeviceData: false })).toEqual({
      updateHubAssignment: false,
      migrateDeviceData: false,
    })
  })
  it.each([
    ['hashed', 'hashed'],
    ['HASHED', 'hashed'],
    ['GeoLatency', 'geoLatency'],
    ['Static', 'static'],
    ['cUsToM', 'custom'],
  ])('normalises allocation policy %s', (input, out) => expect(validateAllocationPolicy(input)).toBe(out))
  it('validates certificate info', () => {
    expect(validateX509CertificateInfo(INFO)).toEqual(INFO)
    expectInvalid(() => validateX509CertificateInfo({ ...INFO, sha1Thumbprint: undefined }), 'sha1Thumbprint', 'is required')
    expectInvalid(() => validateX509CertificateInfo({ ...INFO, notAfterUtc: '2034' }), 'notAfterUtc', 'ISO-8601')
  })
  it('validates custom allocation definitions', () => {
    expect(validateCustomAllocationDefinition({ webhookUrl: 'http://127.0.0.1:7071/api/x', apiVersion: '2018-09-01-preview' })).toEqual({
      webhookUrl: 'http://127.0.0.1:7071/api/x',
      apiVersion: '2018-09-01-preview',
    })
    expectInvalid(() => validateCustomAllocationDefinition({ apiVersion: '2021-10-01' }), 'webhookUrl', 'is required')
    expectInvalid(() => validateCustomAllocationDefinition({ webhookUrl: 'https://a b', apiVersion: '2021-10-01' }), 'webhookUrl', 'absolute http(s) URL')
    expectInvalid(() => validateCustomAllocationDefinition({ webhookUrl: 'https://a', apiVersion: 'latest' }), 'apiVersion', 'api-version such as')
  })
  it('validates initial twins and twin collections', () => {
    expect(validateInitialTwin({})).toEqual({})
    expect(validateInitialTwin({ properties: {} })).toEqual({ properties: {} })
    const tc = validateTwinCollection(JSON.parse('{"__proto__":{"x":1},"count":2}'))
    expect(Object.getPrototypeOf(tc)).toBe(Object.prototype)
    expect(Object.keys(tc)).toEqual(['__proto__', 'count'])
    expectInvalid(() => validateInitialTwin({ tags: [] }), 'tags', 'got an array')
    expectInvalid(() => validateTwinCollection({ 'a b': 1 }), 'a b', 'spaces')
    expectInvalid(() => validateTwinCollection({ a: '\u0001'.repeat(1) , ['\u0085']: 1 }), '\u0085', 'control characters')
    expectInvalid(() => validateTwinCollection({ ['k'.repeat(1025)]: 1 }), 'k'.repeat(1025), 'at most 1024 bytes')
    expectInvalid(() => validateTwinCollection({ a: Number.NaN }), 'a', 'finite number')
    expectInvalid(() => validateTwinCollection({ a: undefined }), 'a', 'must be a JSON value, got undefined')
  })
  it('validates free-form payloads', () => {
    const deep = JSON.parse('{"a":'.repeat(10) + '1' + '}'.repeat(10)) as unknown
    expect(validateJsonObject(deep)).toBe(deep)
    const tooDeep = JSON.parse('{"a":'.repeat(11) + '1' + '}'.repeat(11)) as unknown
    expectInvalid(() => validateJsonObject(tooDeep), 'a.a.a.a.a.a.a.a.a.a', 'must not nest deeper than 10 levels')
    expectInvalid(() => validateJsonObject({ a: [[[[[[[[[[1]]]]]]]]]] }), 'a[0][0][0][0][0][0][0][0][0]', 'nest deeper')
    expectInvalid(() => validateJsonObject({ s: 'x'.repeat(200) }, { maxBytes: 100 }), '', 'at most 100 bytes')
    expectInvalid(() => validateJsonObject('str'), '', 'must be a JSON object, got a string')
    // Keys that are not allowed in twins are fine in payloads.
    expect(validateJsonObject({ 'a.b $': 1 })).toEqual({ 'a.b $': 1 })
  })
})

describe('registration state and device API', () => {
  const result = {
    registrationId: 'dev-1',
    createdDateTimeUtc: '2020-04-10T03:11:13.0276997Z',
    assignedHub: 'contoso.azure-devices.net',
    deviceId: 'dev-1',
    status: 'assigned',
    substatus: 'deviceDataMigrated',
    lastUpdatedDateTimeUtc: '2020-04-10T03:11:13.2914007Z',
    etag: 'IjYxMDA4ZDQ2LTAwMDAtMDEwMC0wMDAwLTVlOGZlM2QxMDAwMCI=',
    payload: { hello: 'world' },
    tpm: { authenticationKey: b64(500) },
    x509: { certificateInfo: INFO, enrollmentGroupId: 'g1', signingCertificateInfo: INFO },
    symmetricKey: {},
    issuedCertificateChain: [b64(600), b64(700)],
  }

  it('round-trips a full DeviceRegistrationResult', () => {
    expect(validateDeviceRegistrationResult(result)).toEqual(result)
  })

  it('parses the operation status sequence seen on the wire (§1.3)', () => {
    expect(validateRegistrationOperationStatus({ operationId: '4.d0a671905ea5b2c8.e7173b7b-0000', status: 'assigning' })).toEqual({
      operationId: '4.d0a671905ea5b2c8.e7173b7b-0000',
      status: 'assigning',
    })
    const failed = validateRegistrationOperationStatus({
      operationId: '',
      status: 'failed',
      registrationState: { registrationId: 'dev-1', status: 'failed', errorCode: 400207, errorMessage: 'Custom allocation failed with status code: 400' },
    })
    expect(failed.registrationState?.errorCode).toBe(400207)
    expect(validateRegistrationOperationStatus({ operationId: 'x', status: 'assigned', registrationState: { registrationId: 'd', status: 'assigned', x509: {} } }).registrationState?.x509).toEqual({})
  })

  it('drops attestation sub-objects from DeviceRegistrationState', () => {
    const s = validateDeviceRegistrationState(result)
    expect('tpm' in s || 'x509' in s || 'symmetricKey' in s).toBe(false)
    expect(s.payload).toEqual({ hello: 'world' })
  })

  it('accepts every shape of DeviceRegistration body (§1.2)', () => {
    expect(validateDeviceRegistration(undefined)).toEqual({})
    expect(validateDeviceRegistration(null)).toEqual({})
    expect(validateDeviceRegistration({ payload: { modelId: 'dtmi:x;1' } })).toEqual({ payload: { modelId: 'dtmi:x;1' } })
    const tpm = { registrationId: 'dev-1', tpm: { endorsementKey: b64(314), storageRootKey: b64(280) }, csr: b64(900) }
    expect(validateDeviceRegistration(tpm)).toEqual(tpm)
  })

  table(validateDeviceRegistration, [
    ['a bad registrationId', { registrationId: 'a b' }, 'registrationId', "contains ' '"],
    ['a payload array', { payload: [1] }, 'payload', 'got an array'],
    ['a non-base64 EK', { tpm: { endorsementKey: 'zz' } }, 'tpm.endorsementKey', 'must be base64 of 1 to 2048 bytes'],
    ['a huge EK', { tpm: { endorsementKey: b64(2049) } }, 'tpm.endorsementKey', 'must be base64 of 1 to 2048 bytes'],
    ['a bad csr', { csr: '-----BEGIN' }, 'csr', 'must be base64'],
    ['a string body', 'x', '', 'must be a JSON object'],
  ])

  table(validateDeviceRegistrationResult, [
    ['a missing status', { registrationId: 'd' }, 'status', 'is required'],
    ['a bad substatus', { registrationId: 'd', status: 'assigned', substatus: 'moved' }, 'substatus', 'must be one of initialAssignment'],
    ['a fractional errorCode', { registrationId: 'd', status: 'failed', errorCode: 4.5 }, 'errorCode', 'must be an integer'],
    ['a tpm result without key', { registrationId: 'd', status: 'assigned', tpm: {} }, 'tpm.authenticationKey', 'is required'],
    ['a bad x509 group id', { registrationId: 'd', status: 'assigned', x509: { enrollmentGroupId: 'g g' } }, 'x509.enrollmentGroupId', "contains ' '"],
    ['a bad assigned hub', { registrationId: 'd', status: 'assigned', assignedHub: 'a..b' }, 'assignedHub', 'DNS host name'],
    ['an empty chain', { registrationId: 'd', status: 'assigned', issuedCertificateChain: [] }, 'issuedCertificateChain', 'must have 1 to 10 items'],
  ])

  table(validateRegistrationOperationStatus, [
    ['a missing operationId', { status: 'assigning' }, 'operationId', 'is required'],
    ['a bad status', { operationId: 'x', status: 'blacklisted' }, 'status', 'must be one of'],
    ['a bad nested state', { operationId: 'x', status: 'assigned', registrationState: { status: 'assigned' } }, 'registrationState.registrationId', 'is required'],
  ])
})

describe('bulk and query', () => {
  const enrollment = { registrationId: 'a', attestation: { type: 'symmetricKey' } }
  it('normalises the mode case-insensitively (Node spells updateIfMatchEtag)', () => {
    const op = validateBulkEnrollmentOperation({ mode: 'updateIfMatchEtag', enrollments: [enrollment] })
    expect(op.mode).toBe('updateIfMatchETag')
    expect(op.enrollments[0].provisioningStatus).toBe('enabled')
  })
  it('accepts references for delete', () => {
    const op = validateBulkEnrollmentOperation({ mode: 'DELETE', enrollments: [{ registrationId: 'a', etag: '"1"' }, enrollment] })
    expect(op.enrollments[0]).toEqual({ registrationId: 'a', etag: '"1"' })
    expect(op.enrollments[1].attestation).toEqual({ type: 'symmetricKey', symmetricKey: {} })
    const g = validateBulkEnrollmentGroupOperation({ mode: 'delete', enrollmentGroups: [{ enrollmentGroupId: 'g' }] })
    expect(g.enrollmentGroups).toEqual([{ enrollmentGroupId: 'g' }])
  })
  table(validateBulkEnrollmentOperation, [
    ['a missing mode', { enrollments: [enrollment] }, 'mode', 'is required'],
    ['a bad mode', { mode: 'upsert', enrollments: [enrollment] }, 'mode', 'must be one of create, update, updateIfMatchETag, delete'],
    ['no items', { mode: 'create', enrollments: [] }, 'enrollments', 'must have 1 to 10 items'],
    ['11 items', { mode: 'create', enrollments: Array(11).fill(enrollment) }, 'enrollments', 'must have 1 to 10 items'],
    ['a bad item', { mode: 'create', enrollments: [enrollment, { registrationId: 'b' }] }, 'enrollments[1].attestation', 'is required'],
    ['a delete item without id', { mode: 'delete', enrollments: [{ etag: 'x' }] }, 'enrollments[0].registrationId', 'is required'],
  ])
  table(validateBulkEnrollmentGroupOperation, [
    ['a bad group', { mode: 'create', enrollmentGroups: [{ enrollmentGroupId: 'g', attestation: { type: 'none' } }] }, 'enrollmentGroups[0].attestation.type', 'only x509 and symmetricKey'],
  ])
  it('validates bulk results', () => {
    const r = { isSuccessful: false, errors: [{ registrationId: 'a', errorCode: 409001, errorStatus: 'Conflict.' }] }
    expect(validateBulkEnrollmentOperationResult(r)).toEqual(r)
    expect(validateBulkEnrollmentGroupOperationResult({ isSuccessful: true })).toEqual({ isSuccessful: true })
    expectInvalid(() => validateBulkEnrollmentOperationResult({ isSuccessful: 'no' }), 'isSuccessful', 'must be a boolean')
    expectInvalid(() => validateBulkEnrollmentGroupOperationResult({ isSuccessful: false, errors: [{ enrollmentGroupId: 'g', errorCode: 1 }] }), 'errors[0].errorStatus', 'is required')
  })
  it('validates query specifications', () => {
    expect(validateQuerySpecification({ query: '*', extra: 1 })).toEqual({ query: '*' })
    expectInvalid(() => validateQuerySpecification({}), 'query', 'is required')
    expectInvalid(() => validateQuerySpecification({ query: 'x'.repeat(4097) }), 'query', 'at most 4096 characters')
  })
})

describe('allocation webhook shapes (§8)', () => {
  const request = {
    individualEnrollment: { registrationId: 'dev-1', attestation: { type: 'symmetricKey', symmetricKey: {} } },
    deviceRuntimeContext: { registrationId: 'dev-1', symmetricKey: {}, payload: { modelId: 'dtmi:x;1' } },
    linkedHubs: ['hub1.azure-devices.net', 'hub2.azure-devices.net'],
  }
  it('validates requests and reads both spellings of currentIotHubHostName', () => {
    const r = validateAllocationRequest(request)
    expect(r.individualEnrollment?.registrationId).toBe('dev-1')
    expect(r.linkedHubs).toHaveLength(2)
    const again = validateAllocationRequest({
      ...request,
      deviceRuntimeContext: { registrationId: 'dev-1', currentIoTHubHostName: 'hub1.azure-devices.net', currentDeviceId: 'dev-1' },
    })
    expect(again.deviceRuntimeContext.currentIotHubHostName).toBe('hub1.azure-devices.net')
  })
  table(validateAllocationRequest, [
    ['both enrollment kinds', { ...request, enrollmentGroup: { enrollmentGroupId: 'g', attestation: { type: 'symmetricKey' } } }, '', 'exactly one of individualEnrollment, enrollmentGroup'],
    ['no runtime context', { ...request, deviceRuntimeContext: undefined }, 'deviceRuntimeContext', 'is required'],
    ['a bad linked hub', { ...request, linkedHubs: ['ok.example', 7] }, 'linkedHubs[1]', 'must be a string'],
  ])
  it('validates responses', () => {
    const r = { iotHubHostName: 'hub1.azure-devices.net', initialTwin: { tags: { a: 1 }, properties: { desired: { b: 2 } } }, payload: { c: 3 } }
    expect(validateAllocationResponse(r)).toEqual(r)
    expectInvalid(() => validateAllocationResponse({}), 'iotHubHostName', 'is required')
    expectInvalid(() => validateAllocationResponse({ iotHubHostName: 'h', payload: 'x' }), 'payload', 'must be a JSON object')
  })
})

describe('parseJsonBody', () => {
  it('parses strings and UTF-8 bytes, ignoring a BOM', () => {
    expect(parseJsonBody('{"a":1}')).toEqual({ a: 1 })
    expect(parseJsonBody(new Uint8Array([0xef, 0xbb, 0xbf, ...Buffer.from('{"é":"ü"}')]))).toEqual({ é: 'ü' })
    expect(parseJsonBody('\ufeff[1]')).toEqual([1])
  })
  it('handles empty bodies as asked', () => {
    expect(parseJsonBody(' ', { allowEmpty: true })).toBeUndefined()
    expect(() => parseJsonBody('')).toThrow(/must not be empty/)
  })
  it.each([
    ['{"a":}', 5, 'expected a value'],
    ['{a:1}', 1, 'expected a double-quoted property name'],
    ['{"a":1', 6, "unexpected end of input, expected ',' or '}'"],
    ['[1,2]x', 5, 'unexpected text after the JSON value'],
    ['{"a":tru}', 5, 'expected a value'],
    ['"abc', 4, 'unterminated string'],
    ['{"a":"\u0001"}', 6, 'control character'],
    ['[1,]', 3, 'expected a value'],
    ['{"a":1,}', 7, 'expected a double-quoted property name'],
    ['01', 1, 'unexpected text after the JSON value'],
    ['{"a" 1}', 5, "expected ':'"],
    ['["\\x"]', 2, 'bad escape'],
    ['["\\u12G4"]', 2, 'bad \\u escape'],
    ['-', 0, 'expected a value'],
  ])('locates the error in %j', (text, position, problem) => {
    let thrown: unknown
    try {
      parseJsonBody(text)
    } catch (error) {
      thrown = error
    }
    const err = thrown as ProvisioError
    expect(err).toBeInstanceOf(ProvisioError)
    expect(err.code).toBe('INVALID_JSON')
    expect(err.errorCode).toBe(400002)
    expect(err.info?.position).toBe(String(position))
    expect(err.message).toContain(problem)
    expect(err.message).toContain(`(position ${position})`)
  })
  it('reports line and column', () => {
    expect(() => parseJsonBody('{\n  "a": 1,\n  "b" 2\n}')).toThrow(/line 3, column 7/)
  })
  it('finds no error in valid JSON', () => {
    for (const t of ['{}', '[]', ' {"a":[1,-2.5e+3,true,false,null,"\\u00e9\\n"]} ', '"x"', '0', '-0.1E-2']) {
      expect(locateJsonError(t)).toBeUndefined()
    }
  })
  it('refuses bodies over the limit before parsing', () => {
    const big = `{"a":"${'x'.repeat(96 * 1024)}"}`
    expect(() => parseJsonBody(big)).toThrow(expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE', httpStatus: 413 }))
    expect(() => parseJsonBody(Buffer.from(big))).toThrow(expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }))
    // 40,000 three-byte characters: few UTF-16 units, too many bytes.
    expect(() => parseJsonBody(`"${'€'.repeat(40_000)}"`, { maxBytes: 100_000 })).toThrow(expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }))
    expect(parseJsonBody(`"${'€'.repeat(30_000)}"`, { maxBytes: 100_000 })).toHaveLength(30_000)
  })
  it('refuses invalid UTF-8', () => {
    expect(() => parseJsonBody(new Uint8Array([0x22, 0xff, 0x22]))).toThrow(expect.objectContaining({ code: 'INVALID_JSON', message: expect.stringContaining('UTF-8') }))
  })
  it('survives hostile nesting', () => {
    const deep = '['.repeat(200_000)
    expect(() => parseJsonBody(deep, { maxBytes: 1 << 20 })).toThrow(expect.objectContaining({ code: 'INVALID_JSON' }))
  })
})

describe('readRegisterBody (one reader for HTTP, MQTT and AMQP)', () => {
  const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

  it('reads bytes or text, an empty body as {}, and a registrationId that names the same device', () => {
    expect(readRegisterBody(utf8(''), 'dev-1', { idFrom: 'MQTT username' })).toEqual({})
    expect(readRegisterBody(' ', 'dev-1', { idFrom: 'URL' })).toEqual({})
    expect(readRegisterBody('{"registrationId":"DEV-1","payload":{"a":1}}', 'dev-1', { idFrom: 'URL' })).toEqual({ registrationId: 'DEV-1', payload: { a: 1 } })
  })

  it('refuses another device\'s registrationId, naming where the transport took its own from', () => {
    for (const idFrom of ['URL', 'MQTT username', 'link address']) {
      const error = (() => {
        try {
          readRegisterBody(utf8('{"registrationId":"other"}'), 'dev-1', { idFrom })
        } catch (e) {
          return e as ProvisioError
        }
        throw new Error('expected a refusal')
      })()
      expect(error.code).toBe('VALIDATION_FAILED')
      expect(error.reason).toBe(`body registrationId "other" differs from the one in the ${idFrom} ("dev-1")`)
      expect(error.deviceMessage).toBe(`registrationId in the body differs from the one in the ${idFrom}`)
    }
  })

  it('applies one size limit on every transport unless the caller sets its own', () => {
    const padding = 'x'.repeat(MAX_REGISTER_BODY_BYTES)
    expect(() => readRegisterBody(utf8(`{"payload":{"p":"${padding}"}}`), 'd', { idFrom: 'link address' })).toThrow(expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }))
    expect(() => readRegisterBody('{"payload":{"p":"abcdefghijkl"}}', 'd', { idFrom: 'URL', maxBytes: 16 })).toThrow(expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }))
    expect(() => readRegisterBody('{"registrationId":', 'd', { idFrom: 'URL' })).toThrow(expect.objectContaining({ code: 'INVALID_JSON' }))
  })
})

describe('api-versions', () => {
  it('accepts every known version and flags features', () => {
    for (const v of DEVICE_API_VERSIONS) expect(acceptApiVersion(v, 'device').known).toBe(true)
    expect(acceptApiVersion('2026-04-01', 'device').certificateIssuance).toBe(true)
    expect(acceptApiVersion('2021-10-01', 'device').certificateIssuance).toBe(false)
    expect(acceptApiVersion('2021-11-01-preview', 'device').trustBundle).toBe(true)
  })
  it('is lenient with unknown but well-formed versions and defaults a missing one', () => {
    const v = acceptApiVersion('2030-01-01-preview', 'device')
    expect(v).toMatchObject({ known: false, preview: true, date: '2030-01-01', defaulted: false })
    expect(acceptApiVersion(undefined, 'device')).toMatchObject({ version: '2019-03-31', defaulted: true })
    expect(acceptApiVersion('', 'service')).toMatchObject({ version: '2021-10-01', defaulted: true, known: true })
  })
  it('refuses malformed versions', () => {
    for (const bad of ['latest', '2021-13-01', '2021-10-01-beta', '21-10-01']) {
      expect(() => acceptApiVersion(bad, 'device')).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_API_VERSION' }))
    }
  })
  it('orders versions with previews before the release of the same date', () => {
    const sorted = ['2021-10-01', '2019-03-31', '2021-10-01-preview', '2018-09-01-preview'].sort(compareApiVersions)
    expect(sorted).toEqual(['2018-09-01-preview', '2019-03-31', '2021-10-01-preview', '2021-10-01'])
  })
})

describe('validateAttestationMechanism', () => {
  it('keeps only the sub-object the type names', () => {
    expect(validateAttestationMechanism({ type: 'none', tpm: { endorsementKey: 'x' } })).toEqual({ type: 'none' })
    expect(validateAttestationMechanism({ type: 'symmetrickey', symmetricKey: { primaryKey: KEY32 } })).toEqual({
      type: 'symmetricKey',
      symmetricKey: { primaryKey: KEY32 },
    })
  })
})
