import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { StateFile, loadOrCreateState } from '../src/state.js'
import { runPolicies } from '../src/policies.js'

const key = (n: number) => Buffer.alloc(32, n).toString('base64')

describe('state.json policies', () => {
  it('upgrades a file written before rights: keys kept, every right for the old policies, the default hub policies added', () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-state-'))
    const old = {
      version: 1,
      idScope: '0ne00000001',
      servicePolicies: [{ name: 'provisioningserviceowner', primaryKey: key(1), secondaryKey: key(2) }],
      hubs: [{ hostName: 'localhost', policies: [{ name: 'iothubowner', primaryKey: key(3), secondaryKey: key(4) }] }],
    }
    writeFileSync(join(dir, 'state.json'), JSON.stringify(old))
    const { state, created } = loadOrCreateState(dir, ['localhost'], [{ name: 'reader', rights: ['EnrollmentRead'] }])
    expect(created).toBe(false)
    expect(state.servicePolicies.map((p) => [p.name, p.rights])).toEqual([
      ['provisioningserviceowner', ['ServiceConfig', 'EnrollmentRead', 'EnrollmentWrite', 'RegistrationStatusRead', 'RegistrationStatusWrite', 'DeviceConnect']],
      ['reader', ['EnrollmentRead']],
    ])
    expect(state.servicePolicies[0]!.primaryKey).toBe(key(1))
    expect(state.hubs[0]!.policies.map((p) => p.name)).toEqual(['iothubowner', 'service', 'device', 'registryRead', 'registryReadWrite'])
    expect(state.hubs[0]!.policies[0]).toMatchObject({ primaryKey: key(3), secondaryKey: key(4), rights: ['RegistryWrite', 'ServiceConnect', 'DeviceConnect'] })
    // Written back, so every process reads the same keys.
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'))).toEqual(state)
    // Configured rights follow the configuration at the next start.
    expect(loadOrCreateState(dir, ['localhost'], [{ name: 'reader', rights: ['EnrollmentWrite'] }]).state.servicePolicies[1]!.rights).toEqual(['EnrollmentWrite'])
  })

  it('StateFile reloads after another process rewrote the file, and keeps the last good state when it does not parse', () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisio-state-'))
    const { state } = loadOrCreateState(dir, ['localhost'])
    const changes: string[] = []
    const errors: string[] = []
    const file = new StateFile(dir, state, { onChange: (s) => changes.push(s.servicePolicies.map((p) => p.name).join(',')), onError: (m) => errors.push(m) })
    expect(file.current()).toBe(state)
    runPolicies({ dataDir: dir, action: 'add', name: 'ops', rights: 'ServiceConfig' })
    expect(file.current().servicePolicies.map((p) => p.name)).toEqual(['provisioningserviceowner', 'ops'])
    expect(changes).toEqual(['provisioningserviceowner,ops'])
    writeFileSync(join(dir, 'state.json'), '{ half a file')
    expect(file.current().servicePolicies.map((p) => p.name)).toEqual(['provisioningserviceowner', 'ops'])
    expect(errors).toEqual([expect.stringContaining('not valid JSON')])
  })
})
