/**
 * Timestamps in the shape DPS puts on the wire: ISO-8601 UTC with seven fractional digits
 * (`2020-04-10T03:11:13.0276997Z`, docs/protocol.md §1.3, AZC traces). Pure packages have no
 * `Date` (docs/architecture.md §1), so the civil date is computed from the
 * day count directly: the proleptic Gregorian calendar repeats every 400 years (146,097 days),
 * and counting years from 1 March puts the leap day at the end of the year, which makes the
 * month lengths a linear formula.
 */

const MS_PER_DAY = 86_400_000
/** Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar. */
const EPOCH_SHIFT_DAYS = 719_468
const DAYS_PER_ERA = 146_097

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0')
}

/**
 * Formats milliseconds since the Unix epoch (fractions allowed) as a DPS timestamp with 100 ns
 * resolution, e.g. `formatDpsTimestamp(0) === '1970-01-01T00:00:00.0000000Z'`.
 */
export function formatDpsTimestamp(epochMs: number): string {
  if (!Number.isFinite(epochMs)) throw new RangeError(`timestamp must be a finite number of milliseconds, got ${String(epochMs)}`)
  // Whole milliseconds and 100 ns ticks within the millisecond are kept apart: `epochMs * 10_000`
  // would leave the exact-integer range of a double (2^53) for dates far from 1970. Floored, so a
  // later instant never formats as an earlier one.
  const wholeMs = Math.floor(epochMs)
  const subTicks = Math.min(9_999, Math.floor((epochMs - wholeMs) * 10_000))
  const dayIndex = Math.floor(wholeMs / MS_PER_DAY)
  const msOfDay = wholeMs - dayIndex * MS_PER_DAY
  const secondsOfDay = Math.floor(msOfDay / 1000)
  const fraction = (msOfDay - secondsOfDay * 1000) * 10_000 + subTicks

  const z = dayIndex + EPOCH_SHIFT_DAYS
  const era = Math.floor(z / DAYS_PER_ERA)
  const dayOfEra = z - era * DAYS_PER_ERA // [0, 146096]
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365,
  ) // [0, 399]
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100)) // from 1 March
  const shiftedMonth = Math.floor((5 * dayOfYear + 2) / 153) // 0 = March … 11 = February
  const day = dayOfYear - Math.floor((153 * shiftedMonth + 2) / 5) + 1
  const month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)

  const hh = Math.floor(secondsOfDay / 3600)
  const mm = Math.floor((secondsOfDay % 3600) / 60)
  const ss = secondsOfDay % 60
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hh, 2)}:${pad(mm, 2)}:${pad(ss, 2)}.${pad(fraction, 7)}Z`
}
