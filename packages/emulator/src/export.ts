/**
 * A run's results as files: the device table as CSV (one row per device, for a spreadsheet) and
 * the whole run as JSON (settings without secrets, the summary, every device with its log). Pure.
 */
import { withoutMetadata, type DeviceRow } from './fleet.js'
import type { EmulatorSettings } from './settings.js'
import type { RunSummary } from './stats.js'

export const CSV_COLUMNS = [
  'index',
  'registrationId',
  'status',
  'assignedHub',
  'deviceId',
  'latencyMs',
  'errorCode',
  'reason',
  'twinStatus',
  'desired',
  'connection',
  'telemetrySent',
  'telemetryErrors',
  'desiredReceived',
] as const

/** The settings a file may carry: everything but keys. */
export type PublicSettings = Omit<EmulatorSettings, 'groupKey' | 'individualKeys'>

export function publicSettings(settings: EmulatorSettings): PublicSettings {
  const { groupKey: _groupKey, individualKeys: _keys, ...rest } = settings
  return rest
}

/** RFC 4180 CSV of the rows (CRLF line ends); text that a spreadsheet would run as a formula is prefixed with `'`. */
export function rowsToCsv(rows: readonly (DeviceRow | undefined)[]): string {
  const lines = [CSV_COLUMNS.join(',')]
  for (const row of rows) {
    if (row === undefined) continue
    const values: Record<(typeof CSV_COLUMNS)[number], string | number | undefined> = {
      index: row.index,
      registrationId: row.registrationId,
      status: row.status,
      assignedHub: row.assignedHub,
      deviceId: row.deviceId,
      latencyMs: row.latencyMs === undefined ? undefined : Math.round(row.latencyMs),
      errorCode: row.errorCode,
      reason: row.reason,
      twinStatus: row.twinStatus,
      desired: row.twinStatus === 'read' ? JSON.stringify(desiredOf(row.twin)) : undefined,
      connection: row.connection,
      telemetrySent: row.telemetrySent,
      telemetryErrors: row.telemetryErrors,
      desiredReceived: row.desiredReceived,
    }
    lines.push(CSV_COLUMNS.map((c) => csvField(values[c])).join(','))
  }
  return lines.join('\r\n') + '\r\n'
}

/** One CSV field: quoted when it holds a comma, quote or line break; formula-looking text defused. */
export function csvField(value: string | number | undefined): string {
  if (value === undefined) return ''
  if (typeof value === 'number') return String(value)
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

/** The run as one JSON document. */
export function runToJson(settings: PublicSettings, summary: RunSummary, rows: readonly (DeviceRow | undefined)[], exportedAt: string): string {
  const devices = rows.filter((r): r is DeviceRow => r !== undefined).map((r) => ({ ...r, ...(r.twinStatus === 'read' ? { twin: { desired: desiredOf(r.twin) } } : {}) }))
  return JSON.stringify({ exportedAt, settings, summary, devices }, null, 1)
}

/** The desired properties of a twin document without the hub's bookkeeping. */
export function desiredOf(twin: unknown): Record<string, unknown> {
  const props = (twin as { desired?: Record<string, unknown>; properties?: { desired?: Record<string, unknown> } } | undefined) ?? {}
  return withoutMetadata(props.desired ?? props.properties?.desired ?? {})
}
