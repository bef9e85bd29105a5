import { describe, expect, it } from 'vitest'
import { deriveDeviceKey } from '@provisio/crypto'
import { parseIndividualKeys, parseSettings, registrationIds, type RawSettings } from '../src/settings.js'
import { deviceSpecs } from '../src/specs.js'
import { applyServerConfig, parseServerConfig, readServerConfig } from '../src/server-config.js'

const KEY = Buffer.alloc(32, 5).toString('base64')
const base: RawSettings = {
  host: 'localhost',
  port: '8443',
  idScope: '0ne0000ABCD',
  transport: 'mqtt-ws',
  credential: 'group-key',
  groupKey: KEY,
  registrationIdPrefix: 'dev-',
  count: '200',
  concurrency: '20',
  readTwins: 'true',
}

describe('parseSettings', () => {
  it('turns the form into typed settings', () => {
    const r = parseSettings(base)
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(r.settings).toMatchObject({ host: 'localhost', port: 8443, idScope: '0ne0000ABCD', transport: 'mqtt-ws', credential: 'group-key', count: 200, concurrency: 20, readTwins: true })
    expect(registrationIds({ registrationIdPrefix: 'dev-', count: 3 })).toEqual(['dev-0', 'dev-1', 'dev-2'])
  })

  it('names every wrong field with the reason', () => {
    const r = parseSettings({ ...base, host: 'bad host', port: '70000', idScope: 'scope', transport: 'amqp', count: '0', concurrency: 'x', groupKey: 'not base64!' })
    expect(r.ok).toBe(false)
    if (r.ok) return
    const byField = Object.fromEntries(r.errors.map((e) => [e.field, e.message]))
    expect(Object.keys(byField).sort()).toEqual(['concurrency', 'count', 'groupKey', 'host', 'idScope', 'port', 'transport'])
    expect(byField.port).toMatch(/1 to 65535/)
    expect(byField.idScope).toMatch(/0ne followed by 8 hex digits/)
    expect(byField.count).toMatch(/1 to 100000/)
  })

  it('refuses registration ids DPS would refuse, and caps software TPMs', () => {
    const upper = parseSettings({ ...base, registrationIdPrefix: 'Dev ' })
    expect(upper.ok).toBe(false)
    if (!upper.ok) expect(upper.errors[0]!.field).toBe('registrationIdPrefix')
    const mqttTpm = parseSettings({ ...base, credential: 'tpm', count: '2' })
    expect(mqttTpm.ok).toBe(false)
    if (!mqttTpm.ok) expect(mqttTpm.errors).toEqual([{ field: 'transport', message: expect.stringMatching(/no TPM attestation over MQTT/) }])
    const tpms = parseSettings({ ...base, transport: 'amqp-ws', credential: 'tpm', count: '501' })
    expect(tpms.ok).toBe(false)
    if (!tpms.ok) expect(tpms.errors[0]!.message).toMatch(/1 to 500 \(software TPMs are made in the page\)/)
  })

  it('takes individual keys one per line, counting the devices from the list', () => {
    const r = parseSettings({ ...base, credential: 'individual-keys', count: '', individualKeys: `# comment\na-1 ${KEY}\n\na-2,${KEY}\n` })
    expect(r.ok).toBe(true)
    if (r.ok) expect(r.settings.count).toBe(2)
    expect(parseIndividualKeys(`a-1 ${KEY}\na-1 ${KEY}`)).toMatch(/line 2: a-1 is listed twice/)
    expect(parseIndividualKeys(`a-1`)).toMatch(/line 1: expected "registrationId key"/)
    expect(parseIndividualKeys(`A_1 ${KEY}`)).toMatch(/not a valid registration id/)
    expect(parseIndividualKeys(`a-1 %%%%`)).toMatch(/not base64/)
    expect(parseIndividualKeys('')).toMatch(/at least one device/)
  })
})

describe('deviceSpecs', () => {
  it('derives group devices\' keys from the group key (HMAC-SHA256 of the registration id)', () => {
    const r = parseSettings(base)
    if (!r.ok) throw new Error('settings')
    const spec = deviceSpecs(r.settings)(7)
    expect(spec).toEqual({ index: 7, registrationId: 'dev-7', credential: { kind: 'symmetric-key', key: deriveDeviceKey(KEY, 'dev-7') } })
  })

  it('gives individual devices their listed key and TPM devices their index', () => {
    const ind = parseSettings({ ...base, credential: 'individual-keys', individualKeys: `x-1 ${KEY}` })
    if (!ind.ok) throw new Error('settings')
    expect(deviceSpecs(ind.settings)(0)).toEqual({ index: 0, registrationId: 'x-1', credential: { kind: 'symmetric-key', key: KEY } })
    expect(() => deviceSpecs(ind.settings)(1)).toThrow(/no device 1/)
    const tpm = parseSettings({ ...base, transport: 'http', credential: 'tpm', count: '3' })
    if (!tpm.ok) throw new Error('settings')
    expect(deviceSpecs(tpm.settings)(2)).toEqual({ index: 2, registrationId: 'dev-2', credential: { kind: 'tpm', index: 2 } })
  })
})

describe('server config', () => {
  it('pre-fills from config.json, then the query string; keys never come from the URL', () => {
    const config = parseServerConfig({ idScope: '0ne0000ABCD', host: 'dps.local', port: 9443, extra: 1 })
    expect(config).toEqual({ idScope: '0ne0000ABCD', host: 'dps.local', port: 9443 })
    const values = applyServerConfig(config, new URLSearchParams('transport=amqp-ws&count=20&groupKey=SECRET&port=1234'))
    expect(values).toEqual({ host: 'dps.local', port: '1234', idScope: '0ne0000ABCD', transport: 'amqp-ws', count: '20' })
    expect(parseServerConfig({ idScope: 1 })).toBeUndefined()
  })

  it('reads nothing when the page is not served by provisio', async () => {
    expect(await readServerConfig(async () => ({ ok: false, json: async () => ({}) }))).toBeUndefined()
    expect(
      await readServerConfig(async () => {
        throw new TypeError('network')
      }),
    ).toBeUndefined()
    expect(await readServerConfig(async () => ({ ok: true, json: async () => ({ idScope: 's', host: 'h', port: 1 }) }))).toEqual({ idScope: 's', host: 'h', port: 1 })
  })
})
