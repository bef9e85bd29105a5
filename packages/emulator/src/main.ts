/**
 * The page: reads the form, runs a Fleet through the device driver, and repaints the counts,
 * the chart and the device table from the fleet (at most a few times a second). All device logic
 * lives in the plain modules beside this one; this file only touches the DOM.
 */
import './style.css'
import { ready } from '@provisio/crypto'
import { drawChart } from './chart.js'
import { patchDesired } from './desired-edit.js'
import { MethodCallError, answerStatus, invokeMethod } from './direct-method.js'
import { HubServiceError } from './hub-service.js'
import { createDriver } from './driver.js'
import { desiredOf, publicSettings, rowsToCsv, runToJson } from './export.js'
import { Fleet, type DeviceRow } from './fleet.js'
import { parseSettings, X509_NOTE, type EmulatorSettings, type RawSettings } from './settings.js'
import { deviceSpecs } from './specs.js'
import { HISTORY_SECONDS } from './stats.js'
import { TpmPool } from './tpms.js'
import { applyServerConfig, readServerConfig } from './server-config.js'

/** Rows the device table shows at most (the counts cover every device). */
const MAX_TABLE_ROWS = 1000
/** Seconds the chart spans. */
const CHART_WINDOW = 60

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`page element #${id} is missing`)
  return el as T
}

const form = $<HTMLFormElement>('settings')
const fields = ['host', 'port', 'idScope', 'transport', 'credential', 'groupKey', 'registrationIdPrefix', 'individualKeys', 'count', 'concurrency', 'telemetryIntervalSeconds'] as const
const startButton = $<HTMLButtonElement>('start')
const stopButton = $<HTMLButtonElement>('stop')
const makeTpmsButton = $<HTMLButtonElement>('make-tpms')
const runState = $('run-state')
const errorsList = $('errors')
const tbody = $('device-rows')
const canvas = $<HTMLCanvasElement>('chart')
const filter = $<HTMLSelectElement>('filter')
/** The device whose log is shown (row index), if any. */
let selected: number | undefined

$('x509-note').textContent = X509_NOTE

let fleet: Fleet | undefined
/** The settings of the current (or last) run. */
let runSettings: EmulatorSettings | undefined
let tpms: TpmPool | undefined
let tpmAbort: AbortController | undefined
const rowElements = new Map<number, HTMLTableRowElement>()
const dirty = new Set<number>()
let repaintQueued = false

function raw(): RawSettings {
  const out: Record<string, string> = {}
  for (const name of fields) out[name] = ($(name) as HTMLInputElement).value
  out.readTwins = String($<HTMLInputElement>('readTwins').checked)
  out.stayConnected = String($<HTMLInputElement>('stayConnected').checked)
  return out as RawSettings
}

function showCredentialFields(): void {
  const kind = $<HTMLSelectElement>('credential').value
  for (const el of form.querySelectorAll<HTMLElement>('[data-for]')) el.hidden = !(el.dataset.for ?? '').split(' ').includes(kind)
}

function showErrors(errors: readonly { field: string; message: string }[]): void {
  errorsList.replaceChildren(
    ...errors.map((e) => {
      const li = document.createElement('li')
      li.textContent = e.message
      li.dataset.field = e.field
      return li
    }),
  )
  for (const name of fields) $(name).removeAttribute('aria-invalid')
  for (const e of errors) document.getElementById(e.field)?.setAttribute('aria-invalid', 'true')
}

function setRunning(running: boolean): void {
  startButton.disabled = running
  stopButton.disabled = !running
  makeTpmsButton.disabled = running
  for (const el of form.querySelectorAll<HTMLInputElement>('fieldset input, fieldset select, fieldset textarea')) {
    if (el.id !== 'tpm-enrollments') el.disabled = running
  }
}

async function makeTpms(settings: Pick<EmulatorSettings, 'registrationIdPrefix' | 'count'>): Promise<TpmPool> {
  const pool = tpms !== undefined && tpms.prefix === settings.registrationIdPrefix ? tpms : new TpmPool(settings.registrationIdPrefix)
  tpms = pool
  const progress = $('tpm-progress')
  const list = $<HTMLTextAreaElement>('tpm-enrollments')
  list.value = ''
  tpmAbort = new AbortController()
  await pool.makeAll(
    settings.count,
    () => new Promise((resolve) => setTimeout(resolve, 0)),
    (done) => (progress.textContent = `${done} / ${settings.count} TPMs made`),
    tpmAbort.signal,
  )
  list.value = JSON.stringify(pool.enrollments().slice(0, settings.count), null, 1)
  return pool
}

makeTpmsButton.addEventListener('click', () => {
  const parsed = parseSettings({ ...raw(), credential: 'tpm' })
  const wrong = parsed.ok ? [] : parsed.errors.filter((e) => e.field === 'count' || e.field === 'registrationIdPrefix')
  showErrors(wrong)
  if (wrong.length > 0 || !parsed.ok) return
  makeTpmsButton.disabled = true
  runState.textContent = 'making TPMs…'
  makeTpms(parsed.settings)
    .then(() => (runState.textContent = 'TPMs ready: enroll them, then Start'))
    .catch((error: unknown) => showErrors([{ field: 'count', message: `making TPMs failed: ${(error as Error).message}` }]))
    .finally(() => (makeTpmsButton.disabled = false))
})

form.addEventListener('submit', (event) => {
  event.preventDefault()
  if (fleet?.running === true) return
  const parsed = parseSettings(raw())
  if (!parsed.ok) {
    showErrors(parsed.errors)
    return
  }
  showErrors([])
  void start(parsed.settings)
})

stopButton.addEventListener('click', () => {
  tpmAbort?.abort()
  fleet?.stop()
  runState.textContent = 'stopping…'
})

async function start(settings: EmulatorSettings): Promise<void> {
  setRunning(true)
  runState.textContent = 'starting…'
  try {
    await ready()
    if (settings.credential === 'tpm' && (tpms === undefined || tpms.prefix !== settings.registrationIdPrefix || tpms.size < settings.count)) {
      runState.textContent = 'making TPMs…'
      await makeTpms(settings)
    }
  } catch (error) {
    showErrors([{ field: 'count', message: (error as Error).message }])
    setRunning(false)
    runState.textContent = 'idle'
    return
  }
  rowElements.clear()
  dirty.clear()
  tbody.replaceChildren()
  selected = undefined
  $('log-panel').hidden = true
  const current = new Fleet({
    count: settings.count,
    concurrency: settings.concurrency,
    device: deviceSpecs(settings),
    driver: createDriver(settings, { tpms }),
    clock: { now: () => performance.now() },
    readTwins: settings.readTwins,
    stayConnected: settings.stayConnected,
    telemetryIntervalMs: settings.telemetryIntervalSeconds * 1000,
    methodStatus: () => answerStatus($<HTMLInputElement>('method-answer-status').value),
    every: (ms, run) => {
      const timer = setInterval(run, ms)
      return () => clearInterval(timer)
    },
  })
  fleet = current
  runSettings = settings
  exportCsv.disabled = false
  exportJson.disabled = false
  current.on((event) => {
    if (event.type === 'device') dirty.add(event.row.index)
    queueRepaint()
  })
  runState.textContent = `running: ${settings.count} devices over ${settings.transport}, ${settings.concurrency} at a time${settings.stayConnected ? '; they stay connected until Stop' : ''}`
  runState.dataset.state = 'running'
  const timer = setInterval(queueRepaint, 500)
  await current.start()
  clearInterval(timer)
  const s = current.stats
  runState.textContent = `${current.stats.byStatus.stopped > 0 ? 'stopped' : 'done'}: ${s.byStatus.assigned} assigned, ${s.byStatus.failed + s.byStatus.error + s.byStatus.disabled} not`
  runState.dataset.state = 'done'
  setRunning(false)
  queueRepaint()
}

function queueRepaint(): void {
  if (repaintQueued) return
  repaintQueued = true
  requestAnimationFrame(() => {
    repaintQueued = false
    repaint()
  })
}

function repaint(): void {
  if (fleet === undefined) return
  const { stats } = fleet
  const now = performance.now()
  $('count-started').textContent = String(stats.startedDevices)
  $('count-assigned').textContent = String(stats.byStatus.assigned)
  $('count-failed').textContent = String(stats.byStatus.failed)
  $('count-error').textContent = String(stats.byStatus.error)
  $('count-disabled').textContent = String(stats.byStatus.disabled)
  $('count-stopped').textContent = String(stats.byStatus.stopped)
  $('count-twins').textContent = String(stats.twinsRead) + (stats.twinErrors > 0 ? ` (${stats.twinErrors} failed)` : '')
  $('rate').textContent = stats.rate(now).toFixed(1)
  $('count-connected').textContent = String(stats.connected)
  $('count-telemetry').textContent = String(stats.telemetrySent) + (stats.telemetryErrors > 0 ? ` (${stats.telemetryErrors} failed)` : '')
  $('count-desired').textContent = String(stats.desiredReceived)
  const summary = stats.summary(now)
  $('summary-duration').textContent = `${summary.durationSeconds.toFixed(1)} s`
  $('summary-finished').textContent = String(summary.finished)
  $('summary-rate').textContent = summary.finished === 0 ? '–' : summary.ratePerSecond.toFixed(1)
  $('summary-latency').textContent = summary.latencyMs === undefined ? '–' : [summary.latencyMs.p50, summary.latencyMs.p95, summary.latencyMs.p99, summary.latencyMs.max].map((v) => Math.round(v)).join(' / ')
  $('summary-telemetry').textContent = `${summary.telemetrySent} / ${summary.telemetryErrors}`

  const codes = [...stats.byErrorCode.entries()].sort((a, b) => b[1] - a[1])
  $('error-codes').replaceChildren(
    ...codes.map(([code, n]) => {
      const tr = document.createElement('tr')
      tr.dataset.code = code
      tr.append(cell(code), cell(String(n), 'num'))
      return tr
    }),
  )
  $('no-errors').hidden = codes.length > 0
  ;($('error-codes').parentElement as HTMLTableElement).hidden = codes.length === 0

  const end = stats.elapsedSeconds(now)
  drawChart(canvas, { points: stats.series(Math.max(0, end - Math.min(CHART_WINDOW, HISTORY_SECONDS) + 1), end), window: CHART_WINDOW })

  for (const index of dirty) {
    const row = fleet.rows[index]
    if (row !== undefined) renderRow(row)
  }
  if (selected !== undefined && dirty.has(selected)) renderLog()
  dirty.clear()
  applyFilter()
}

function renderLog(): void {
  const row = selected === undefined ? undefined : fleet?.rows[selected]
  $('log-panel').hidden = row === undefined
  if (row === undefined) return
  $('log-device').textContent = row.registrationId
  $('device-log').replaceChildren(
    ...row.log.map((line) => {
      const li = document.createElement('li')
      const at = document.createElement('span')
      at.className = 'at'
      at.textContent = `${(line.atMs / 1000).toFixed(3)} s`
      li.append(at, line.text)
      return li
    }),
  )
  for (const [index, tr] of rowElements) tr.classList.toggle('selected', index === selected)
}

tbody.addEventListener('click', (event) => {
  const tr = (event.target as HTMLElement).closest('tr')
  if (tr === null) return
  for (const [index, el] of rowElements) if (el === tr) selected = index
  renderLog()
})

function renderRow(row: DeviceRow): void {
  let tr = rowElements.get(row.index)
  if (tr === undefined) {
    if (rowElements.size >= MAX_TABLE_ROWS) return
    tr = document.createElement('tr')
    tr.dataset.testid = 'device-row'
    rowElements.set(row.index, tr)
    tbody.append(tr)
  }
  tr.dataset.registrationId = row.registrationId
  tr.dataset.status = row.status
  const status = document.createElement('span')
  status.className = `status ${row.status}`
  status.textContent = row.status
  const twin = document.createElement('td')
  twin.className = 'twin'
  twin.dataset.field = 'twin'
  if (row.twinStatus === 'read') {
    const code = document.createElement('code')
    code.textContent = JSON.stringify(desiredOf(row.twin))
    twin.append(code)
  } else if (row.twinStatus !== undefined) {
    twin.textContent = row.twinStatus === 'reading' ? 'reading…' : `error: ${row.twinError ?? ''}`
  }
  const statusCell = cell('', undefined, 'status')
  statusCell.append(status)
  tr.replaceChildren(
    cell(String(row.index), 'num'),
    cell(row.registrationId, undefined, 'registration-id'),
    statusCell,
    cell(row.assignedHub ?? '', undefined, 'hub'),
    cell(row.deviceId ?? '', undefined, 'device-id'),
    cell(row.latencyMs === undefined ? '' : String(Math.round(row.latencyMs)), 'num', 'latency'),
    cell(row.errorCode === undefined ? (row.reason ?? '') : `${row.errorCode}: ${row.reason ?? ''}`, 'reason', 'reason'),
    twin,
    cell(row.connection === undefined ? '' : `${row.telemetrySent ?? 0} sent${row.connection === 'connected' ? '' : `, ${row.connection}`}`, 'num', 'telemetry'),
  )
}

function applyFilter(): void {
  const want = filter.value
  let shown = 0
  for (const tr of rowElements.values()) {
    const s = tr.dataset.status ?? ''
    const visible = want === 'all' || s === want || (want === 'problem' && (s === 'failed' || s === 'error' || s === 'disabled'))
    tr.hidden = !visible
    if (visible) shown++
  }
  const total = fleet?.rows.length ?? 0
  $('table-note').textContent = total > MAX_TABLE_ROWS ? `showing the first ${MAX_TABLE_ROWS} of ${total} devices (counts above include all)` : `${shown} shown`
}

function cell(text: string, className?: string, field?: string): HTMLTableCellElement {
  const td = document.createElement('td')
  td.textContent = text
  if (className !== undefined) td.className = className
  if (field !== undefined) td.dataset.field = field
  return td
}

const exportCsv = $<HTMLButtonElement>('export-csv')
const exportJson = $<HTMLButtonElement>('export-json')

/** Offers `text` as a file download (a blob: link clicked once). */
function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }))
  const a = document.createElement('a')
  a.href = url
  a.download = name
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
}

const fileStamp = () => new Date().toISOString().replace(/[:.]/g, '-')
exportCsv.addEventListener('click', () => {
  if (fleet !== undefined) download(`provisio-emulator-${fileStamp()}.csv`, 'text/csv;charset=utf-8', rowsToCsv(fleet.rows))
})
exportJson.addEventListener('click', () => {
  if (fleet === undefined || runSettings === undefined) return
  download(`provisio-emulator-${fileStamp()}.json`, 'application/json', runToJson(publicSettings(runSettings), fleet.stats.summary(performance.now()), fleet.rows, new Date().toISOString()))
})

/** The selected device and what every hub call from its panel needs (typed connection string, the run's server, now); undefined when it is not on a hub. */
function selectedOnHub(): { row: DeviceRow; target: { connectionString: string; deviceId: string; host: string; port: number; nowSeconds: number } } | undefined {
  const row = selected === undefined ? undefined : fleet?.rows[selected]
  if (row?.deviceId === undefined || row.assignedHub === undefined || runSettings === undefined) return undefined
  const target = { connectionString: $<HTMLInputElement>('hub-connection-string').value, deviceId: row.deviceId, host: runSettings.host, port: runSettings.port, nowSeconds: Math.floor(Date.now() / 1000) }
  return { row, target }
}

/** Shows an outcome in a status line: its text and `data-state`. */
function outcome(el: HTMLElement, state: string, text: string): void {
  el.textContent = text
  el.dataset.state = state
}

const failure = (what: string, error: unknown) => (error instanceof HubServiceError ? error.message : `${what} failed: ${(error as Error).message}`)

$<HTMLFormElement>('desired-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const status = $('desired-status')
  const on = selectedOnHub()
  if (on === undefined) return outcome(status, 'error', 'this device is not assigned to a hub')
  const { row, target } = on
  outcome(status, 'sending', `sending to ${target.deviceId}…`)
  ready()
    .then(() => patchDesired(fetch, { ...target, patchText: $<HTMLTextAreaElement>('desired-patch').value }))
    .then(({ version }) =>
      outcome(
        status,
        'sent',
        `the hub took it${version === undefined ? '' : ` (desired version ${version})`}${row.connection === 'connected' ? '; the device log shows when it arrives' : '; the device is not connected, it reads it at its next connection'}`,
      ),
    )
    .catch((error: unknown) => outcome(status, 'error', failure('sending', error)))
})

$<HTMLFormElement>('method-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const result = $('method-result')
  delete result.dataset.errorCode
  delete result.dataset.status
  const on = selectedOnHub()
  if (on === undefined) return outcome(result, 'error', 'this device is not assigned to a hub')
  const { target } = on
  outcome(result, 'sending', `calling ${target.deviceId}…`)
  ready()
    .then(() =>
      invokeMethod(fetch, {
        ...target,
        methodName: $<HTMLInputElement>('method-name').value,
        payloadText: $<HTMLTextAreaElement>('method-payload').value,
        responseTimeoutText: $<HTMLInputElement>('method-response-timeout').value,
        connectTimeoutText: $<HTMLInputElement>('method-connect-timeout').value,
      }),
    )
    .then(({ status, payload }) => {
      result.dataset.status = String(status)
      outcome(result, 'answered', `the device answered ${status}: ${JSON.stringify(payload)}`)
    })
    .catch((error: unknown) => {
      if (error instanceof MethodCallError && error.errorCode !== undefined) result.dataset.errorCode = String(error.errorCode)
      outcome(result, 'error', failure('calling', error))
    })
})

// A status that is not a whole number is answered as 200 (answerStatus): say so at the input.
$('method-answer-status').addEventListener('input', (event) => {
  const input = event.target as HTMLInputElement
  if (answerStatus(input.value) === Number(input.value.trim()) && input.value.trim() !== '') input.removeAttribute('aria-invalid')
  else input.setAttribute('aria-invalid', 'true')
})

filter.addEventListener('change', applyFilter)
$('credential').addEventListener('change', showCredentialFields)
showCredentialFields()

// Pre-fill: the serving provisio's settings (same origin), then the page's query string.
void (async () => {
  // Vite's dev server has no config.json: asking would only log a failed load.
  const config = import.meta.env.DEV ? undefined : await readServerConfig(fetch)
  const values = applyServerConfig(config, new URLSearchParams(location.search))
  for (const [name, value] of Object.entries(values)) {
    const el = document.getElementById(name) as HTMLInputElement | HTMLSelectElement | null
    if (el === null) continue
    if (el instanceof HTMLInputElement && el.type === 'checkbox') el.checked = value !== 'false'
    else el.value = value
  }
  showCredentialFields()
  $('server-info').textContent =
    config === undefined ? 'Not served by provisio serve: fill in the endpoint and ID scope.' : `Server ${config.host}:${config.port}, ID scope ${config.idScope}`
  document.body.dataset.ready = 'true'
})()
