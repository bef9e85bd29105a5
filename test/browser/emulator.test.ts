// The browser device emulator in real Chromium (Debian's `chromium`, driven by playwright-core)
// against the built `provisio serve`: the page is loaded from /emulator/ on the HTTPS port,
// pre-fills the ID scope from config.json, provisions 200 devices by enrollment-group key over
// MQTT over WebSockets and 20 devices with software TPMs made in the page over AMQP over
// WebSockets, and shows every device assigned with its twin's initial desired properties; a device
// refused for a wrong key shows the server's reason (--dev-reasons, on for a loopback server);
// devices that stay connected send telemetry the server keeps and receive a desired change made
// from the page and answer a direct method invoked from the page (a disconnected device's call shows
// the hub's 404103); the run exports as CSV and JSON with its whole-run summary. The page logs no
// console error at all (a Content-Security-Policy refusal included). Screenshots are saved to
// test/artifacts/ (never committed).
//
// Needs /usr/bin/chromium (`.ci/run` installs it): skipped when it is missing on a developer's
// machine, failed when CI=true.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer as createNetServer } from 'node:net'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { createServer as createViteServer, type ViteDevServer } from 'vite'
import { buildSasToken, parseDpsServiceConnectionString, parseHubConnectionString } from '@provisio/protocol'
import { httpsRequest } from '../lib/https-client.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const cli = join(root, 'packages', 'server', 'dist', 'cli.js')
const emulatorDist = join(root, 'packages', 'emulator', 'dist')
const artifacts = join(root, 'test', 'artifacts')
const CHROMIUM = '/usr/bin/chromium'
const haveChromium = existsSync(CHROMIUM)
const inCi = process.env.CI === 'true' || process.env.CI === '1'

const GROUP_KEY = Buffer.alloc(64, 0x2a).toString('base64')
/** A key no enrollment has: the devices using it are refused. */
const WRONG_GROUP_KEY = Buffer.alloc(64, 0x3b).toString('base64')
/** Devices of the stay-connected run. */
const LIVE_DEVICES = 3
const GROUP_DEVICES = 200
const TPM_DEVICES = 20
/** Devices per transport provisioned from the Vite dev server's origin. */
const CROSS_ORIGIN_DEVICES = 10
/** The initial desired properties each enrollment gives its devices' twins. */
const GROUP_DESIRED = { emulated: 'group', telemetryIntervalSeconds: 30 }
const TPM_DESIRED = { emulated: 'tpm', firmware: '1.2.3' }

interface Endpoints {
  idScope: string
  serviceConnectionString: string
  caCertificate: string
  ports: { https: number }
  emulator?: string
  hubs: { hostName: string; connectionString: string }[]
}

let dataDir: string
let profileDir: string
let child: ChildProcess | undefined
let output = ''
let endpoints: Endpoints
let caPem: string
let context: BrowserContext | undefined
let vite: ViteDevServer | undefined
let viteOrigin: string
let page: Page
const pageErrors: string[] = []
/** Everything the page logged as an error (CSP refusals, failed loads, console.error). */
const consoleErrors: string[] = []

describe('Chromium is available', () => {
  it.runIf(inCi)('is installed on CI (.ci/run installs Debian chromium)', () => {
    expect(haveChromium, `${CHROMIUM} is missing`).toBe(true)
  })
})

async function service(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const cs = parseDpsServiceConnectionString(endpoints.serviceConnectionString)
  const token = buildSasToken({ resource: cs.hostName, key: cs.sharedAccessKey, keyName: cs.sharedAccessKeyName, expiresAt: Math.floor(Date.now() / 1000) + 3600 })
  return httpsRequest(endpoints.ports.https, caPem, method, `${path}?api-version=2021-10-01`, {
    headers: { authorization: token, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
}

/** SPKI SHA-256 (base64) of the server certificate, for --ignore-certificate-errors-spki-list. */
function spkiHash(pemPath: string): string {
  const pem = readFileSync(pemPath, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0]
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(der).digest('base64')
}

/** The page's numbers, as shown. */
async function counts(): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of ['started', 'assigned', 'failed', 'error', 'disabled', 'stopped', 'twins']) {
    out[name] = (await page.getByTestId(`count-${name}`).textContent())?.trim() ?? ''
  }
  return out
}

/** Every device row: registration id, status, hub, device id, reason and the twin's desired properties. */
async function rows(): Promise<{ id: string; status: string; hub: string; deviceId: string; reason: string; twin: string }[]> {
  return page.$$eval('[data-testid="device-row"]', (trs) =>
    trs.map((tr) => {
      const f = (name: string) => tr.querySelector(`[data-field="${name}"]`)?.textContent ?? ''
      return { id: f('registration-id'), status: f('status'), hub: f('hub'), deviceId: f('device-id'), reason: f('reason'), twin: f('twin') }
    }),
  )
}

/** Saves what the page shows (before the assertions, so a failing run leaves it too). */
async function screenshot(name: string): Promise<void> {
  mkdirSync(artifacts, { recursive: true })
  await page.screenshot({ path: join(artifacts, name), fullPage: true })
}

async function runAndWait(timeoutMs: number): Promise<void> {
  await page.getByTestId('start').click()
  await page.waitForFunction(() => document.querySelector('[data-testid="run-state"]')?.getAttribute('data-state') === 'running', undefined, { timeout: 60_000 })
  await page.waitForFunction(() => document.querySelector('[data-testid="run-state"]')?.getAttribute('data-state') === 'done', undefined, { timeout: timeoutMs, polling: 500 })
  // The last repaint is queued on the next animation frame.
  await page.waitForTimeout(300)
}

/** A port nobody listens on right now (for Vite, which cannot be given port 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
}

describe.skipIf(!haveChromium)('the browser device emulator in Chromium', () => {
  beforeAll(async () => {
    expect(existsSync(cli), `${cli} must be built (turbo builds it before these tests)`).toBe(true)
    expect(existsSync(join(emulatorDist, 'index.html')), `${emulatorDist} must be built (npm run build -w @provisio/emulator)`).toBe(true)
    dataDir = mkdtempSync(join(tmpdir(), 'provisio-browser-'))
    profileDir = mkdtempSync(join(tmpdir(), 'provisio-chromium-'))
    // The emulator's own Vite dev server, on a free port: a page of another origin than the server.
    const vitePort = await freePort()
    vite = await createViteServer({
      root: join(root, 'packages', 'emulator'),
      configFile: join(root, 'packages', 'emulator', 'vite.config.ts'),
      server: { host: '127.0.0.1', port: vitePort, strictPort: true },
      logLevel: 'warn',
    })
    await vite.listen()
    viteOrigin = `http://127.0.0.1:${vitePort}`
    child = spawn(
      process.execPath,
      [cli, 'serve', '--data-dir', dataDir, '--https-port', '0', '--mqtt-port', '0', '--amqp-port', '0', '--retry-after', '1', '--cors-origins', viteOrigin],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()))
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()))
    const deadline = Date.now() + 60_000
    while (!output.includes('Provisio is running')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`provisio serve did not start:\n${output}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    endpoints = JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8')) as Endpoints
    caPem = readFileSync(endpoints.caCertificate, 'utf8')

    const group = await service('PUT', '/enrollmentGroups/emulated-group', {
      enrollmentGroupId: 'emulated-group',
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: GROUP_KEY, secondaryKey: GROUP_KEY } },
      initialTwin: { properties: { desired: GROUP_DESIRED } },
    })
    expect(group.status, group.body).toBe(200)

    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      ignoreHTTPSErrors: true,
      viewport: { width: 1400, height: 1000 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // Trust exactly our dev server certificate, for fetch and WebSockets alike.
        `--ignore-certificate-errors-spki-list=${spkiHash(join(dataDir, 'server.pem'))}`,
      ],
    })
    page = context.pages()[0] ?? (await context.newPage())
    page.on('pageerror', (error) => pageErrors.push(error.message))
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(`${message.text()} (${message.location().url})`)
    })
  }, 180_000)

  afterAll(async () => {
    await context?.close()
    await vite?.close()
    child?.kill('SIGTERM')
    if (child !== undefined && child.exitCode === null) await new Promise((r) => child!.once('exit', r))
    if (dataDir) rmSync(dataDir, { recursive: true, force: true })
    if (profileDir) rmSync(profileDir, { recursive: true, force: true })
  })

  it('serves the page at /emulator/ (the workspace build, found without --emulator-dir) and pre-fills the endpoint and ID scope from the server', async () => {
    expect(endpoints.emulator).toBe(`https://localhost:${endpoints.ports.https}/emulator/`)
    expect(output).toContain(`Browser device emulator    ${endpoints.emulator}`)
    await page.goto(endpoints.emulator!)
    await page.waitForFunction(() => document.body.dataset.ready === 'true')
    expect(await page.getByTestId('id-scope').inputValue()).toBe(endpoints.idScope)
    expect(await page.getByTestId('port').inputValue()).toBe(String(endpoints.ports.https))
    expect(await page.getByTestId('host').inputValue()).toBe('localhost')
    expect(await page.getByTestId('x509-note').textContent()).toMatch(/provisio simulate/)
  })

  it(`provisions ${GROUP_DEVICES} devices by group key over MQTT over WebSockets, each with its twin`, async () => {
    await page.goto(`${endpoints.emulator!}?transport=mqtt-ws&credential=group-key&registrationIdPrefix=grp-&count=${GROUP_DEVICES}&concurrency=25`)
    await page.waitForFunction(() => document.body.dataset.ready === 'true')
    await page.getByTestId('group-key').fill(GROUP_KEY)
    await runAndWait(10 * 60_000)
    await screenshot('emulator-group.png')
    const shown = await counts()
    expect(shown).toMatchObject({ started: String(GROUP_DEVICES), assigned: String(GROUP_DEVICES), failed: '0', error: '0', stopped: '0', twins: String(GROUP_DEVICES) })
    const table = await rows()
    expect(table).toHaveLength(GROUP_DEVICES)
    expect(new Set(table.map((r) => r.id))).toEqual(new Set(Array.from({ length: GROUP_DEVICES }, (_, i) => `grp-${i}`)))
    for (const r of table) {
      expect(r, r.id).toMatchObject({ status: 'assigned', hub: 'localhost', deviceId: r.id, reason: '' })
      expect(JSON.parse(r.twin), r.id).toEqual(GROUP_DESIRED)
    }
    expect(await page.getByTestId('error-codes').locator('tbody tr').count()).toBe(0)
  }, 12 * 60_000)

  it(`provisions ${TPM_DEVICES} devices with software TPMs made in the page over AMQP over WebSockets`, async () => {
    await page.goto(`${endpoints.emulator!}?transport=amqp-ws&credential=tpm&registrationIdPrefix=tpm-&count=${TPM_DEVICES}&concurrency=10`)
    await page.waitForFunction(() => document.body.dataset.ready === 'true')
    await page.getByTestId('make-tpms').click()
    // The list to enroll appears once every TPM is made.
    await page.waitForFunction(
      (n) => {
        const list = (document.querySelector('[data-testid="tpm-enrollments"]') as HTMLTextAreaElement | null)?.value ?? ''
        return list !== '' && (JSON.parse(list) as unknown[]).length === n
      },
      TPM_DEVICES,
      { timeout: 10 * 60_000, polling: 500 },
    )
    expect(await page.getByTestId('tpm-progress').textContent()).toBe(`${TPM_DEVICES} / ${TPM_DEVICES} TPMs made`)
    const enrollments = JSON.parse(await page.getByTestId('tpm-enrollments').inputValue()) as { registrationId: string; endorsementKey: string }[]
    expect(enrollments.map((e) => e.registrationId)).toEqual(Array.from({ length: TPM_DEVICES }, (_, i) => `tpm-${i}`))
    for (const e of enrollments) {
      const res = await service('PUT', `/enrollments/${e.registrationId}`, {
        registrationId: e.registrationId,
        attestation: { type: 'tpm', tpm: { endorsementKey: e.endorsementKey } },
        initialTwin: { properties: { desired: TPM_DESIRED } },
      })
      expect(res.status, res.body).toBe(200)
    }
    await runAndWait(10 * 60_000)
    // A device's log opens on click.
    await page.locator('[data-testid="device-row"][data-registration-id="tpm-3"]').click()
    await screenshot('emulator.png')
    expect(await page.getByTestId('device-log-id').textContent()).toBe('tpm-3')
    const log = await page.getByTestId('device-log').locator('li').allTextContents()
    expect(log[0]).toMatch(/registering$/)
    expect(log.some((line) => /assigned to localhost as tpm-3 \(initialAssignment\) after \d+ ms$/.test(line)), log.join('\n')).toBe(true)
    expect(log.some((line) => /request\(s\), \d+ retried, over amqp-ws$/.test(line)), log.join('\n')).toBe(true)
    expect(log.at(-1)).toMatch(/twin read$/)
    const shown = await counts()
    expect(shown).toMatchObject({ started: String(TPM_DEVICES), assigned: String(TPM_DEVICES), failed: '0', error: '0', stopped: '0', twins: String(TPM_DEVICES) })
    const table = await rows()
    expect(table).toHaveLength(TPM_DEVICES)
    for (const r of table) {
      expect(r, r.id).toMatchObject({ status: 'assigned', hub: 'localhost', deviceId: r.id, reason: '' })
      expect(JSON.parse(r.twin), r.id).toEqual(TPM_DESIRED)
    }
  }, 22 * 60_000)

  it('works from the Vite dev server, another origin: CORS on HTTPS and the Origin check on MQTT-WS', async () => {
    for (const transport of ['http', 'mqtt-ws']) {
      await page.goto(`${viteOrigin}/emulator/?host=localhost&port=${endpoints.ports.https}&idScope=${endpoints.idScope}&transport=${transport}&credential=group-key&registrationIdPrefix=dev-${transport}-&count=${CROSS_ORIGIN_DEVICES}&concurrency=5`)
      await page.waitForFunction(() => document.body.dataset.ready === 'true', undefined, { timeout: 120_000 })
      expect(await page.getByTestId('server-info').textContent()).toMatch(/Not served by provisio serve/)
      await page.getByTestId('group-key').fill(GROUP_KEY)
      await runAndWait(5 * 60_000)
      expect(await counts(), transport).toMatchObject({ assigned: String(CROSS_ORIGIN_DEVICES), failed: '0', error: '0', twins: String(CROSS_ORIGIN_DEVICES) })
      for (const r of await rows()) expect(JSON.parse(r.twin), r.id).toEqual(GROUP_DESIRED)
    }
  }, 12 * 60_000)

  it('the server counted every registration the page shows, and the page threw nothing', async () => {
    const metrics = await httpsRequest(endpoints.ports.https, caPem, 'GET', '/metrics')
    const assigned = metrics.body.match(/^provisio_registrations_total\{status="assigned"\} (\d+)$/m)
    expect(Number(assigned?.[1])).toBe(GROUP_DEVICES + TPM_DEVICES + 2 * CROSS_ORIGIN_DEVICES)
    expect(pageErrors).toEqual([])
    expect(consoleErrors).toEqual([])
  })

  it('a device refused for a wrong key shows the server\'s own reason (development reasons, on for a loopback server)', async () => {
    await page.goto(`${endpoints.emulator!}?transport=mqtt-ws&credential=group-key&registrationIdPrefix=nokey-&count=3&concurrency=3`)
    await page.waitForFunction(() => document.body.dataset.ready === 'true')
    await page.getByTestId('group-key').fill(WRONG_GROUP_KEY)
    // Three refusals take a moment: wait for the end (a fresh page has no run state yet), not for "running" first.
    await page.getByTestId('start').click()
    await page.waitForFunction(() => document.querySelector('[data-testid="run-state"]')?.getAttribute('data-state') === 'done', undefined, { timeout: 2 * 60_000, polling: 100 })
    await page.waitForTimeout(300)
    await page.locator('[data-testid="device-row"][data-registration-id="nokey-1"]').click()
    await screenshot('emulator-refused.png')
    expect(await counts()).toMatchObject({ started: '3', assigned: '0', failed: '3', error: '0' })
    const reason = (id: string) =>
      `401002: Unauthorized (development reason: no individual enrollment '${id}' in ID scope ${endpoints.idScope}, and no device key derived from the 1 symmetric-key group(s) (emulated-group) verifies the token)`
    for (const r of await rows()) expect(r, r.id).toMatchObject({ status: 'failed', reason: reason(r.id) })
    expect(await page.locator('#error-codes tr[data-code="401002"] td').allTextContents()).toEqual(['401002', '3'])
    const log = await page.getByTestId('device-log').locator('li').allTextContents()
    expect(log.at(-1)).toMatch(/failed \(401002\): Unauthorized \(development reason: no individual enrollment 'nokey-1'/)
    expect(consoleErrors).toEqual([])
  }, 3 * 60_000)

  it(`${LIVE_DEVICES} devices stay connected, send telemetry every second, and one receives a desired change and answers a direct method made from the page (404103 once disconnected)`, async () => {
    await page.goto(`${endpoints.emulator!}?transport=mqtt-ws&credential=group-key&registrationIdPrefix=live-&count=${LIVE_DEVICES}&concurrency=${LIVE_DEVICES}&stayConnected=true&telemetryIntervalSeconds=1`)
    await page.waitForFunction(() => document.body.dataset.ready === 'true')
    expect(await page.getByTestId('stay-connected').isChecked()).toBe(true)
    await page.getByTestId('group-key').fill(GROUP_KEY)
    await page.getByTestId('start').click()
    await page.waitForFunction((n) => document.querySelector('[data-testid="count-connected"]')?.textContent === String(n), LIVE_DEVICES, { timeout: 2 * 60_000, polling: 200 })
    // Two messages per device at least: the interval runs.
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="count-telemetry"]')?.textContent) >= 2 * n, LIVE_DEVICES, { timeout: 60_000, polling: 200 })
    expect(await page.getByTestId('run-state').getAttribute('data-state')).toBe('running')

    // The desired change, made from the device's panel with the hub connection string.
    await page.locator('[data-testid="device-row"][data-registration-id="live-1"]').click()
    await page.getByTestId('hub-connection-string').fill(endpoints.hubs[0]!.connectionString)
    await page.getByTestId('desired-patch').fill('{"firmware": "2.0.0", "telemetryIntervalSeconds": 5}')
    await page.getByTestId('send-desired').click()
    await page.waitForFunction(() => document.querySelector('[data-testid="desired-status"]')?.getAttribute('data-state') !== 'sending', undefined, { timeout: 60_000, polling: 100 })
    expect(await page.getByTestId('desired-status').textContent()).toMatch(/^the hub took it \(desired version \d+\); the device log shows when it arrives$/)
    await page.waitForFunction(() => document.querySelector('[data-testid="count-desired"]')?.textContent === '1', undefined, { timeout: 60_000, polling: 100 })
    await page.waitForTimeout(300)
    await screenshot('emulator-live.png')
    const log = await page.getByTestId('device-log').locator('li').allTextContents()
    expect(log.some((line) => /desired change \(version \d+\) received: \{"firmware":"2\.0\.0","telemetryIntervalSeconds":5\}$/.test(line)), log.join('\n')).toBe(true)
    const live = await rows()
    expect(live.map((r) => r.id).sort()).toEqual(['live-0', 'live-1', 'live-2'])
    for (const r of live) {
      expect(r.status, r.id).toBe('assigned')
      expect(JSON.parse(r.twin), r.id).toEqual(r.id === 'live-1' ? { ...GROUP_DESIRED, firmware: '2.0.0', telemetryIntervalSeconds: 5 } : GROUP_DESIRED)
    }

    // The server kept what the page counted as sent (the hub acknowledged each message).
    const hub = parseHubConnectionString(endpoints.hubs[0]!.connectionString)
    const token = buildSasToken({ resource: hub.hostName, key: hub.sharedAccessKey, keyName: hub.sharedAccessKeyName, expiresAt: Math.floor(Date.now() / 1000) + 3600 })
    const events = await httpsRequest(endpoints.ports.https, caPem, 'GET', '/devices/live-1/messages/events?api-version=2021-04-12', { headers: { authorization: token } })
    expect(events.status, events.body).toBe(200)
    const kept = (JSON.parse(events.body) as { messages: { body: string }[] }).messages.map((m) => JSON.parse(m.body) as { deviceId: string; seq: number; temperature: number })
    expect(kept.length).toBeGreaterThanOrEqual(2)
    expect(kept.slice(0, 2).map((m) => ({ deviceId: m.deviceId, seq: m.seq }))).toEqual([{ deviceId: 'live-1', seq: 1 }, { deviceId: 'live-1', seq: 2 }])

    // A direct method from the same panel: the device echoes the payload with the status set on the page and logs the call.
    await page.getByTestId('method-answer-status').fill('201')
    await page.getByTestId('method-name').fill('blink')
    await page.getByTestId('method-payload').fill('{"times": 3, "color": "green"}')
    await page.getByTestId('method-response-timeout').fill('10')
    await page.getByTestId('invoke-method').click()
    await page.waitForFunction(() => document.querySelector('[data-testid="method-result"]')?.getAttribute('data-state') !== 'sending', undefined, { timeout: 60_000, polling: 100 })
    expect(await page.getByTestId('method-result').textContent()).toBe('the device answered 201: {"times":3,"color":"green"}')
    expect(await page.getByTestId('method-result').getAttribute('data-status')).toBe('201')
    await page.waitForFunction(() => Array.from(document.querySelectorAll('[data-testid="device-log"] li')).some((li) => li.textContent?.includes('direct method blink') === true), undefined, { timeout: 10_000, polling: 100 })
    expect((await page.getByTestId('device-log').locator('li').allTextContents()).some((line) => line.endsWith('direct method blink called with {"times":3,"color":"green"}; answered 201, payload echoed'))).toBe(true)
    await screenshot('emulator-method.png')

    // Stop closes every connection and ends the run.
    await page.getByTestId('stop').click()
    await page.waitForFunction(() => document.querySelector('[data-testid="run-state"]')?.getAttribute('data-state') === 'done', undefined, { timeout: 60_000, polling: 200 })
    await page.waitForTimeout(300)
    expect((await counts()).assigned).toBe(String(LIVE_DEVICES))
    expect(await page.getByTestId('count-connected').textContent()).toBe('0')

    // The same call to the device, now disconnected: the hub's 404103 and its message after the 1 s connect timeout.
    await page.getByTestId('method-connect-timeout').fill('1')
    const errorsBefore = consoleErrors.length
    await page.getByTestId('invoke-method').click()
    await page.waitForFunction(() => document.querySelector('[data-testid="method-result"]')?.getAttribute('data-state') !== 'sending', undefined, { timeout: 60_000, polling: 100 })
    expect(await page.getByTestId('method-result').getAttribute('data-error-code')).toBe('404103')
    expect(await page.getByTestId('method-result').textContent()).toBe('the hub answered 404: 404103 Timed out waiting for device to connect.')
    await screenshot('emulator-method-offline.png')
    // Chromium reports every 4xx answer to fetch() on the console; this 404 is the refusal the call asked for, and the only entry it adds.
    const offlineLoad = /^Failed to load resource: the server responded with a status of 404 \(Not Found\) \(https:\/\/localhost:\d+\/twins\/live-1\/methods\?api-version=2021-04-12\)$/
    expect(consoleErrors.splice(errorsBefore)).toEqual([expect.stringMatching(offlineLoad)])
    expect(pageErrors).toEqual([])
    expect(consoleErrors).toEqual([])
  }, 5 * 60_000)

  it('the run exports as CSV and JSON, with the whole-run summary the page shows', async () => {
    // The stay-connected run of the test before.
    expect(await page.getByTestId('summary-finished').textContent()).toBe(String(LIVE_DEVICES))
    const rate = Number(await page.getByTestId('summary-rate').textContent())
    expect(rate).toBeGreaterThan(0)
    expect(await page.getByTestId('summary-latency').textContent()).toMatch(/^\d+ \/ \d+ \/ \d+ \/ \d+$/)

    const [csvFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()])
    expect(csvFile.suggestedFilename()).toMatch(/^provisio-emulator-.*\.csv$/)
    const csv = readFileSync((await csvFile.path())!, 'utf8').trimEnd().split('\r\n')
    expect(csv[0]).toBe('index,registrationId,status,assignedHub,deviceId,latencyMs,errorCode,reason,twinStatus,desired,connection,telemetrySent,telemetryErrors,desiredReceived')
    expect(csv).toHaveLength(LIVE_DEVICES + 1)
    const line1 = csv.find((l) => l.startsWith('1,live-1,'))!
    expect(line1).toMatch(/^1,live-1,assigned,localhost,live-1,\d+,,,read,"\{""emulated"":""group"",""telemetryIntervalSeconds"":5,""firmware"":""2\.0\.0""\}",closed,(\d+),0,1$/)
    expect(Number(/,closed,(\d+),0,1$/.exec(line1)![1])).toBeGreaterThanOrEqual(2)

    const [jsonFile] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-json').click()])
    const text = readFileSync((await jsonFile.path())!, 'utf8')
    expect(text).not.toContain(GROUP_KEY)
    const run = JSON.parse(text) as { settings: Record<string, unknown>; summary: Record<string, unknown>; devices: { registrationId: string; desiredReceived?: number }[] }
    expect(run.settings).toMatchObject({ idScope: endpoints.idScope, transport: 'mqtt-ws', count: LIVE_DEVICES, stayConnected: true, telemetryIntervalSeconds: 1 })
    expect(run.settings).not.toHaveProperty('groupKey')
    expect(run.summary).toMatchObject({ started: LIVE_DEVICES, finished: LIVE_DEVICES, byStatus: { assigned: LIVE_DEVICES }, desiredReceived: 1, connected: 0 })
    expect(Number((run.summary.ratePerSecond as number).toFixed(1))).toBe(rate)
    expect(run.summary.telemetrySent as number).toBeGreaterThanOrEqual(2 * LIVE_DEVICES)
    expect(run.devices.map((d) => d.registrationId)).toEqual(['live-0', 'live-1', 'live-2'])
    expect(run.devices[1]!.desiredReceived).toBe(1)
    expect(consoleErrors).toEqual([])
  })

  it('Stop aborts the devices at work and starts no more', async () => {
    await page.goto(`${endpoints.emulator!}?transport=mqtt-ws&credential=group-key&registrationIdPrefix=stop-&count=5000&concurrency=5&readTwins=false`)
    await page.waitForFunction(() => document.body.dataset.ready === 'true')
    await page.getByTestId('group-key').fill(GROUP_KEY)
    await page.getByTestId('start').click()
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="count-assigned"]')?.textContent) >= 10, undefined, { timeout: 5 * 60_000, polling: 200 })
    await page.getByTestId('stop').click()
    await page.waitForFunction(() => document.querySelector('[data-testid="run-state"]')?.getAttribute('data-state') === 'done', undefined, { timeout: 120_000, polling: 200 })
    await page.waitForTimeout(300)
    const shown = await counts()
    const started = Number(shown.started)
    expect(started).toBeLessThan(5000)
    expect(Number(shown.stopped)).toBeGreaterThan(0)
    expect(Number(shown.assigned) + Number(shown.stopped) + Number(shown.failed) + Number(shown.error)).toBe(started)
    expect(await page.getByTestId('run-state').textContent()).toMatch(/^stopped: /)
    expect(await page.getByTestId('start').isEnabled()).toBe(true)
    expect(pageErrors).toEqual([])
    expect(consoleErrors).toEqual([])
  })
})
